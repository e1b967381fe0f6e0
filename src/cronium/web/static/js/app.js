// Cronium's page glue: API calls with the CSRF header, forms that post JSON to the REST API
// and show its validation errors next to each field, confirmations, toasts and the theme.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  async function api(method, path, body) {
    var init = { method: method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (method !== "GET" && method !== "HEAD") init.headers["X-CSRF-Token"] = csrfToken();
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    var response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      return { ok: false, status: 0, data: { error: { code: "network", message: "Cronium did not answer: " + err.message } } };
    }
    var data = null;
    var text = await response.text();
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = { error: { code: "bad_response", message: text.slice(0, 200) } }; }
    }
    if (response.status === 401 && !path.endsWith("/auth/login")) {
      window.location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
    }
    return { ok: response.ok, status: response.status, data: data };
  }

  // ---- forms -> JSON -------------------------------------------------------------------
  function setPath(target, dotted, value) {
    var parts = dotted.split(".");
    var node = target;
    for (var i = 0; i < parts.length - 1; i++) {
      if (typeof node[parts[i]] !== "object" || node[parts[i]] === null) node[parts[i]] = {};
      node = node[parts[i]];
    }
    node[parts[parts.length - 1]] = value;
  }

  function convert(el) {
    var type = el.dataset.type || (el.type === "number" ? "number" : "");
    var raw = el.value;
    if (el.type === "checkbox") return el.checked;
    if (type === "bool") return raw === "true";
    if (raw === "" && type) return el.dataset.empty === "omit" ? undefined : null;
    if (type === "int") { var n = Number(raw); return Number.isInteger(n) ? n : raw; }
    if (type === "number") { var f = Number(raw); return Number.isNaN(f) ? raw : f; }
    if (type === "json") { try { return JSON.parse(raw); } catch (e) { throw fieldError(el.name, "not valid JSON: " + e.message); } }
    if (type === "csv") return raw.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
    if (type === "lines") return raw.split("\n").map(function (s) { return s.trim(); }).filter(Boolean);
    if (raw === "" && el.dataset.empty === "omit") return undefined;
    if (raw === "" && el.dataset.empty === "null") return null;
    return raw;
  }

  function fieldError(field, message) {
    var err = new Error(message);
    err.details = [{ field: field, message: message }];
    return err;
  }

  function formBody(form) {
    var body = {};
    form.querySelectorAll("input[name], select[name], textarea[name]").forEach(function (el) {
      if (el.disabled || el.closest("[data-skip]")) return;
      if (el.type === "radio" && !el.checked) return;
      var value = convert(el);
      if (value !== undefined) setPath(body, el.name, value);
    });
    return body;
  }

  // ---- errors next to fields -------------------------------------------------------------
  function clearErrors(form) {
    form.querySelectorAll("[data-error-for]").forEach(function (el) { el.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
    form.querySelectorAll("[data-form-error]").forEach(function (el) { el.textContent = ""; el.hidden = true; });
  }

  function findSlot(form, field) {
    var parts = field.split(".");
    for (var n = parts.length; n > 0; n--) {
      var key = parts.slice(0, n).join(".");
      var slot = form.querySelector('[data-error-for="' + CSS.escape(key) + '"]');
      if (slot) return { slot: slot, key: key };
    }
    return null;
  }

  function showErrors(form, error) {
    clearErrors(form);
    var details = Array.isArray(error.details) ? error.details
      : (error.details && error.details.field ? [{ field: error.details.field, message: error.message }] : []);
    var unplaced = [];
    details.forEach(function (d) {
      var found = d.field ? findSlot(form, d.field) : null;
      if (!found) { unplaced.push(d.field && d.field !== "body" ? d.field + ": " + d.message : d.message); return; }
      var extra = found.key === d.field ? "" : d.field.slice(found.key.length + 1) + ": ";
      found.slot.textContent = (found.slot.textContent ? found.slot.textContent + " " : "") + extra + d.message;
      var input = form.querySelector('[name="' + CSS.escape(found.key) + '"]');
      if (input) input.setAttribute("aria-invalid", "true");
    });
    var box = form.querySelector("[data-form-error]");
    var message = unplaced.length ? unplaced.join("; ") : (details.length ? "" : error.message);
    if (box && message) { box.textContent = message; box.hidden = false; }
    else if (message) toast(message, "error");
    var first = form.querySelector('[aria-invalid="true"]');
    if (first && first.focus) first.focus();
  }

  function fill(template, data) {
    return template.replace(/\{(\w+)\}/g, function (_, key) { return data && data[key] !== undefined ? encodeURIComponent(data[key]) : ""; });
  }

  async function submit(form, method, url, body) {
    clearErrors(form);
    var button = form.querySelector('[type="submit"]');
    if (button) button.disabled = true;
    try {
      var result = await api(method, url, body);
      if (!result.ok) {
        showErrors(form, (result.data && result.data.error) || { message: "HTTP " + result.status });
      }
      return result;
    } finally {
      if (button) button.disabled = false;
    }
  }

  function afterSuccess(el, data) {
    var event = new CustomEvent("cronium:done", { bubbles: true, detail: data });
    el.dispatchEvent(event);
    if (el.dataset.success) toast(el.dataset.success, "ok");
    if (el.dataset.redirect) window.location.assign(fill(el.dataset.redirect, data));
    else if (el.dataset.reload !== undefined) window.location.reload();
  }

  document.addEventListener("submit", async function (ev) {
    var form = ev.target;
    if (!form.dataset || !form.dataset.api) return;
    ev.preventDefault();
    var spec = form.dataset.api.split(" ");
    var body;
    try {
      body = typeof form.croniumBody === "function" ? form.croniumBody() : formBody(form);
    } catch (err) {
      showErrors(form, { message: err.message, details: err.details || [] });
      return;
    }
    if (form.dataset.confirm && !(await confirmDialog(form.dataset.confirm))) return;
    var result = await submit(form, spec[0], spec[1], body);
    if (result.ok) afterSuccess(form, result.data);
  });

  // ---- one-click actions ------------------------------------------------------------------
  document.addEventListener("click", async function (ev) {
    var button = ev.target.closest("[data-action]");
    if (!button) return;
    ev.preventDefault();
    if (button.dataset.confirm && !(await confirmDialog(button.dataset.confirm))) return;
    var spec = button.dataset.action.split(" ");
    var body = button.dataset.body ? JSON.parse(button.dataset.body) : undefined;
    button.disabled = true;
    var result = await api(spec[0], spec[1], body);
    button.disabled = false;
    if (!result.ok) {
      toast((result.data && result.data.error && result.data.error.message) || "HTTP " + result.status, "error");
      return;
    }
    afterSuccess(button, result.data);
  });

  // ---- confirmation dialog ----------------------------------------------------------------
  function confirmDialog(message, title) {
    var dialog = document.getElementById("confirm-dialog");
    if (!dialog || typeof dialog.showModal !== "function") return Promise.resolve(window.confirm(message));
    dialog.querySelector("[data-confirm-message]").textContent = message;
    dialog.querySelector("[data-confirm-title]").textContent = title || "Are you sure?";
    return new Promise(function (resolve) {
      dialog.addEventListener("close", function onClose() {
        dialog.removeEventListener("close", onClose);
        resolve(dialog.returnValue === "ok");
      });
      dialog.returnValue = "";
      dialog.showModal();
      dialog.querySelector("[data-confirm-cancel]").focus();
    });
  }

  // ---- toasts ------------------------------------------------------------------------------
  function toast(message, kind) {
    var box = document.getElementById("toasts");
    if (!box) return;
    var item = document.createElement("div");
    item.className = "toast " + (kind || "info");
    item.textContent = message;
    box.appendChild(item);
    setTimeout(function () { item.remove(); }, kind === "error" ? 8000 : 4000);
  }

  // ---- theme, copy, logout ------------------------------------------------------------------
  document.addEventListener("click", async function (ev) {
    if (ev.target.closest("[data-theme-toggle]")) {
      var next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
      document.documentElement.dataset.theme = next;
      try { localStorage.setItem("cronium-theme", next); } catch (e) { /* private mode */ }
      document.dispatchEvent(new CustomEvent("cronium:theme", { detail: next }));
    }
    var copy = ev.target.closest("[data-copy], [data-copy-from]");
    if (copy) {
      var source = copy.dataset.copyFrom ? document.querySelector(copy.dataset.copyFrom) : null;
      var text = source ? (source.value !== undefined ? source.value : source.textContent) : copy.dataset.copy;
      try { await navigator.clipboard.writeText(text); toast("Copied", "ok"); }
      catch (e) { if (source && source.select) source.select(); toast("Press Ctrl+C to copy", "info"); }
    }
    if (ev.target.closest("[data-logout]")) {
      await api("POST", "/api/v1/auth/logout");
      window.location.assign("/login");
    }
  });

  // HTMX requests that change things carry the CSRF header too.
  document.addEventListener("htmx:configRequest", function (ev) {
    ev.detail.headers["X-CSRF-Token"] = csrfToken();
  });

  // Close the open menus when clicking elsewhere.
  document.addEventListener("click", function (ev) {
    var toggle = ev.target.closest("[data-menu-toggle]");
    if (toggle) {
      var nav = document.getElementById(toggle.getAttribute("aria-controls"));
      var open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", String(open));
      nav.classList.toggle("open", open);
    }
    document.querySelectorAll("details.user-menu[open]").forEach(function (d) {
      if (!d.contains(ev.target)) d.open = false;
    });
  });

  window.Cronium = {
    api: api, formBody: formBody, showErrors: showErrors, clearErrors: clearErrors,
    submit: submit, afterSuccess: afterSuccess, confirm: confirmDialog, toast: toast, csrfToken: csrfToken,
  };
})();
