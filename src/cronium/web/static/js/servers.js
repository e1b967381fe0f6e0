// Servers pages: the add/edit form's body (secrets only when typed), "Check" with its
// result, and delete with a second confirmation when events still use the server.
(function () {
  "use strict";
  var C = window.Cronium;

  // ---- the form ----------------------------------------------------------------------
  function setupForm(form) {
    var edit = form.dataset.mode === "edit";
    var storedType = form.dataset.authType || "";
    function input(name) { return form.querySelector('[name="' + name + '"]'); }
    function authType() {
      var checked = form.querySelector('[name="auth.type"]:checked');
      return checked ? checked.value : "key";
    }
    function showAuth() {
      var type = authType();
      form.querySelectorAll("[data-auth-section]").forEach(function (section) {
        section.hidden = section.dataset.authSection !== type;
      });
    }
    form.addEventListener("change", function (ev) {
      if (ev.target.name === "auth.type") showAuth();
    });
    showAuth();

    function changed(el) { return !edit || el.value !== el.defaultValue; }
    function asInt(raw) {
      var n = Number(raw);
      return raw.trim() !== "" && Number.isInteger(n) ? n : raw;
    }

    form.croniumBody = function () {
      var body = {};
      ["name", "host", "username"].forEach(function (name) {
        var el = input(name);
        if (changed(el)) body[name] = el.value.trim();
      });
      ["port", "max_concurrent_jobs"].forEach(function (name) {
        var el = input(name);
        if (el.value.trim() === "") { if (edit && changed(el)) body[name] = null; return; }
        if (changed(el)) body[name] = asInt(el.value);
      });
      var fp = input("host_key_fingerprint");
      if (changed(fp)) {
        var value = fp.value.trim();
        if (value) body.host_key_fingerprint = value;
        else if (edit) body.host_key_fingerprint = null;
      }
      // Secrets are write-only: send auth when creating, when switching the kind, or when
      // a new key/password was typed. Nothing typed on edit means "keep what is stored".
      var type = authType();
      var key = input("auth.private_key").value;
      var passphrase = input("auth.passphrase").value;
      var password = input("auth.password").value;
      var typed = type === "key" ? (key.trim() !== "" || passphrase !== "") : password !== "";
      if (!edit || type !== storedType || typed) {
        body.auth = type === "key"
          ? { type: "key", private_key: key, passphrase: passphrase || null }
          : { type: "password", password: password };
      }
      return body;
    };
  }

  // ---- check ------------------------------------------------------------------------------
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function badge(status) { return el("span", "badge status-" + status, status); }

  function fact(list, label, value, cls) {
    list.appendChild(el("dt", "", label));
    var dd = el("dd", cls || "", value);
    list.appendChild(dd);
    return dd;
  }

  function renderCheck(panel, result) {
    panel.replaceChildren();
    var head = el("div", "row check-head");
    head.appendChild(el("h2", "", result.ok ? "Reachable" : "Not reachable"));
    head.appendChild(badge(result.status));
    panel.appendChild(head);
    var list = el("dl", "facts");
    fact(list, "Connect time", result.latency_ms === null ? "—" : result.latency_ms + " ms");
    fact(list, "Check took", result.duration_ms + " ms");
    fact(list, "Host key", result.host_key_fingerprint || "not pinned", "mono fingerprint").dataset.checkFingerprint = "";
    if (result.error) {
      fact(list, "Error", result.error.code, "mono");
      fact(list, "Message", result.error.message, "error-text").dataset.checkError = "";
    }
    var info = result.system_info;
    if (info) {
      if (info.os) fact(list, "OS", info.os);
      if (info.user) fact(list, "User", info.user, "mono");
      var missing = Object.keys(info.tools || {}).filter(function (t) { return !info.tools[t].present; });
      fact(list, "Missing tools", missing.length ? missing.join(", ") : "none");
    }
    panel.appendChild(list);
    (info && info.warnings || []).forEach(function (w) { panel.appendChild(el("p", "warning", w)); });
    panel.hidden = false;
  }

  function updateServer(scope, result) {
    var status = scope.querySelector("[data-server-status]");
    if (status) status.replaceChildren(badge(result.status));
    var fp = scope.querySelector("[data-server-fingerprint]");
    if (fp && result.host_key_fingerprint) fp.textContent = result.host_key_fingerprint;
    var checked = scope.querySelector("[data-server-checked]");
    if (checked) { checked.textContent = "just now"; checked.title = result.checked_at; }
    var error = scope.querySelector("[data-server-error]");
    if (error) {
      error.textContent = result.error ? result.error.message : "none";
      error.className = result.error ? "error-text" : "muted";
    }
  }

  async function check(button) {
    var id = button.dataset.checkServer;
    var label = button.textContent;
    button.disabled = true;
    button.textContent = "Checking…";
    try {
      var res = await C.api("POST", "/api/v1/servers/" + encodeURIComponent(id) + "/check");
      if (!res.ok) {
        C.toast((res.data && res.data.error && res.data.error.message) || "HTTP " + res.status, "error");
        return;
      }
      var result = res.data;
      var row = button.closest("[data-server-row]");
      updateServer(row || document, result);
      var panel = button.dataset.checkPanel ? document.querySelector(button.dataset.checkPanel) : null;
      if (panel) renderCheck(panel, result);
      var name = result.server ? result.server.name : "server";
      if (result.ok) C.toast(name + " is reachable (" + result.latency_ms + " ms), host key " + result.host_key_fingerprint, "ok");
      else C.toast(name + ": " + result.error.message, "error");
    } finally {
      button.disabled = false;
      button.textContent = label;
    }
  }

  // ---- delete -----------------------------------------------------------------------------
  async function remove(button) {
    var id = encodeURIComponent(button.dataset.deleteServer);
    var name = button.dataset.name || "this server";
    if (!(await C.confirm("Delete " + name + "? Its stored key or password is deleted too.", "Delete server"))) return;
    var res = await C.api("DELETE", "/api/v1/servers/" + id);
    if (res.status === 409 && res.data && res.data.error && res.data.error.details && res.data.error.details.events) {
      var events = res.data.error.details.events.map(function (e) { return e.name; });
      var ok = await C.confirm(
        name + " is a target of " + events.length + " event(s): " + events.slice(0, 5).join(", ")
          + (events.length > 5 ? ", …" : "") + ". Remove it from them and delete it?",
        "Server in use");
      if (!ok) return;
      res = await C.api("DELETE", "/api/v1/servers/" + id + "?force=true");
    }
    if (!res.ok) {
      C.toast((res.data && res.data.error && res.data.error.message) || "HTTP " + res.status, "error");
      return;
    }
    C.toast(name + " deleted", "ok");
    if (button.dataset.redirect) window.location.assign(button.dataset.redirect);
    else {
      var row = button.closest("tr");
      if (row) row.remove();
    }
  }

  document.addEventListener("click", function (ev) {
    var checkButton = ev.target.closest("[data-check-server]");
    if (checkButton) { ev.preventDefault(); check(checkButton); return; }
    var deleteButton = ev.target.closest("[data-delete-server]");
    if (deleteButton) { ev.preventDefault(); remove(deleteButton); }
  });

  var form = document.getElementById("server-form");
  if (form) setupForm(form);
})();
