// Tools pages: fields that follow the chosen tool, "Send test" outcomes shown inline,
// template previews, and secret fields removed on purpose. Writes go through app.js's
// window.Cronium (the REST API, with its validation errors next to the fields).
(function () {
  "use strict";

  var C = window.Cronium;
  var LAST_TEST = "cronium-credential-test-";

  // ---- the field set of the selected tool ----------------------------------------------
  function showTool(form, kind) {
    form.querySelectorAll("[data-tool-fields]").forEach(function (set) {
      var on = set.dataset.toolFields === kind;
      set.hidden = !on;
      set.disabled = !on;
      if (on) set.removeAttribute("data-skip"); else set.setAttribute("data-skip", "");
    });
    form.dataset.tool = kind;
    C.clearErrors(form);
  }

  document.addEventListener("change", function (ev) {
    var select = ev.target.closest("[data-tool-select]");
    if (select) showTool(select.form, select.value);
    var auto = ev.target.closest("[data-autosubmit]");
    if (auto && auto.form) auto.form.submit();
  });

  // Editing a credential: "remove the stored value" sends null for that secret field.
  document.querySelectorAll("form[data-credential-form]").forEach(function (form) {
    form.croniumBody = function () {
      var body = C.formBody(form);
      form.querySelectorAll("[data-clear-secret]:checked").forEach(function (box) {
        body.config = body.config || {};
        body.config[box.dataset.clearSecret.replace(/^config\./, "")] = null;
      });
      return body;
    };
  });

  // ---- outcomes of a test send -----------------------------------------------------------
  function describe(result) {
    // result: app.js api() answer; its data is an action outcome when the call was allowed.
    var data = result.data || {};
    if (!result.ok) {
      var err = data.error || {};
      return { ok: false, short: "not sent (HTTP " + result.status + ")", text: "Not sent: " + (err.message || "HTTP " + result.status) + " (HTTP " + result.status + ")" };
    }
    var parts = [];
    if (data.ok) {
      var res = data.result || {};
      parts.push("Sent");
      if (res.status) parts.push("receiver answered HTTP " + res.status);
      if (res.recipients) parts.push("to " + res.recipients);
      parts.push(data.attempts + (data.attempts === 1 ? " attempt" : " attempts"));
      parts.push(data.duration_ms + " ms");
      return { ok: true, short: "ok" + (res.status ? " (HTTP " + res.status + ")" : ""), text: parts.join(" · ") };
    }
    var e = data.error || {};
    var status = e.status ? " (HTTP " + e.status + ")" : "";
    var text = "Failed: " + (e.code ? e.code + ": " : "") + (e.message || "unknown error") + status;
    return { ok: false, short: "failed: " + (e.code || "error") + status, text: text };
  }

  function show(el, outcome) {
    if (!el) return;
    el.hidden = false;
    // A table cell gets the short form; the whole answer is its tooltip.
    var compact = el.hasAttribute("data-last-test");
    el.textContent = compact ? outcome.short : outcome.text;
    if (compact) el.title = outcome.text;
    el.classList.toggle("ok", outcome.ok);
    el.classList.toggle("error", !outcome.ok);
    el.dataset.outcome = outcome.ok ? "ok" : "error";
  }

  function remember(id, outcome) {
    try {
      localStorage.setItem(LAST_TEST + id, JSON.stringify({ ok: outcome.ok, short: outcome.short, text: outcome.text, at: Date.now() }));
    } catch (e) { /* storage disabled */ }
  }

  // The list's "Last test" column: what this browser saw the last time.
  document.querySelectorAll("[data-last-test]").forEach(function (el) {
    var saved = null;
    try { saved = JSON.parse(localStorage.getItem(LAST_TEST + el.dataset.lastTest) || "null"); } catch (e) { saved = null; }
    if (!saved) return;
    show(el, { ok: saved.ok, short: saved.short || (saved.ok ? "ok" : "failed"), text: saved.text });
    el.title = saved.text + " — " + new Date(saved.at).toLocaleString();
  });

  async function run(button, path, body) {
    var out = document.querySelector(button.dataset.output);
    button.disabled = true;
    if (out) { out.hidden = false; out.textContent = "Sending…"; out.className = out.className.replace(/\b(ok|error)\b/g, "").trim(); }
    try {
      var outcome = describe(await C.api("POST", path, body));
      show(out, outcome);
      if (button.dataset.remember) remember(button.dataset.remember, outcome);
    } finally {
      button.disabled = false;
    }
  }

  function sampleData() {
    var area = document.getElementById("sample-data");
    var error = document.getElementById("sample-error");
    if (!area) return undefined;
    if (error) error.textContent = "";
    area.removeAttribute("aria-invalid");
    try {
      return JSON.parse(area.value || "{}");
    } catch (e) {
      if (error) error.textContent = "not valid JSON: " + e.message;
      area.setAttribute("aria-invalid", "true");
      area.focus();
      return null;
    }
  }

  document.addEventListener("click", async function (ev) {
    var test = ev.target.closest("[data-tool-test]");
    if (test) {
      ev.preventDefault();
      var body;
      var to = test.dataset.toFrom ? document.querySelector(test.dataset.toFrom) : null;
      if (to && to.value.trim()) body = { params: { to: to.value.trim() } };
      await run(test, test.dataset.toolTest, body);
      return;
    }
    var templateTest = ev.target.closest("[data-template-test]");
    if (templateTest) {
      ev.preventDefault();
      var sample = sampleData();
      if (sample === null) return;
      var credential = document.getElementById("test-credential");
      var payload = { sample: sample };
      if (credential && credential.value) payload.credential_id = Number(credential.value);
      await run(templateTest, templateTest.dataset.templateTest, payload);
      return;
    }
    var preview = ev.target.closest("[data-template-preview]");
    if (preview) {
      ev.preventDefault();
      await showPreview(preview.form, preview);
    }
  });

  // ---- preview: the API renders the form's (unsaved) params with the sample data ----------
  async function showPreview(form, button) {
    var box = form.querySelector("[data-preview-box]");
    var output = form.querySelector("[data-preview-output]");
    var failure = form.querySelector("[data-preview-error]");
    var fields;
    try {
      fields = C.formBody(form);
    } catch (err) {
      C.showErrors(form, { message: err.message, details: err.details || [] });
      return;
    }
    var sample = sampleData();
    if (sample === null) return;
    var body = { tool: fields.tool || form.dataset.tool, action: fields.action, params: fields.params || {}, sample: sample };
    button.disabled = true;
    var result;
    try {
      result = await C.submit(form, "POST", "/api/v1/action-templates/preview", body);
    } finally {
      button.disabled = false;
    }
    box.hidden = false;
    failure.hidden = true;
    output.textContent = "";
    if (!result.ok) {
      failure.hidden = false;
      failure.className = "test-outcome error";
      failure.textContent = "Cannot preview: " + ((result.data && result.data.error && result.data.error.message) || "HTTP " + result.status);
      return;
    }
    if (!result.data.ok) {
      var e = result.data.error || {};
      failure.hidden = false;
      failure.className = "test-outcome error";
      failure.textContent = (e.code ? e.code + ": " : "") + (e.message || "cannot render");
      return;
    }
    output.textContent = JSON.stringify(result.data.params, null, 2);
  }
})();
