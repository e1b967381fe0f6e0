// The event editor: shows the parts that fit the event's type and schedule, keeps the
// CodeMirror editor, key/value rows and conditional actions, and builds the API body
// (form.croniumBody) that app.js posts to POST/PATCH /api/v1/events.
(function () {
  "use strict";

  var form = document.getElementById("event-form");
  if (!form) return;
  var data = JSON.parse(document.getElementById("editor-data").textContent);
  var stored = data.event || {};
  var isNew = form.dataset.mode === "new";
  var $ = function (sel, root) { return (root || form).querySelector(sel); };
  var $$ = function (sel, root) { return Array.prototype.slice.call((root || form).querySelectorAll(sel)); };

  var STARTERS = {
    python: 'print("Hello from Cronium")\n',
    bash: 'echo "Hello from Cronium"\n',
    node: 'console.log("Hello from Cronium");\n',
  };

  function fieldError(field, message) {
    var err = new Error(message);
    err.details = [{ field: field, message: message }];
    return err;
  }

  function skip(el, off) {
    el.hidden = off;
    if (off) el.setAttribute("data-skip", ""); else el.removeAttribute("data-skip");
  }

  function option(select, value, text, selected) {
    var o = document.createElement("option");
    o.value = value;
    o.textContent = text;
    if (selected) o.selected = true;
    select.appendChild(o);
  }

  // ---- event type ----------------------------------------------------------------------
  var typeSelect = $("[data-event-type]");
  function showType() {
    var type = typeSelect.value;
    $$("[data-section]").forEach(function (fs) { skip(fs, fs.dataset.section !== type); });
    // A missing credential is reported as "credential_id": show it where it belongs.
    $$("[data-credential-slot]").forEach(function (el) {
      var here = (el.dataset.credentialSlot === "tool") === (type === "tool");
      el.setAttribute("data-error-for", here ? "credential_id" : "credential_id-elsewhere");
    });
  }
  typeSelect.addEventListener("change", showType);

  // ---- script editor -------------------------------------------------------------------
  var content = $("#script-content");
  var language = $("[data-language]");
  if (isNew && !content.value) content.value = STARTERS[language.value] || "";
  var code = window.CroniumEditor ? window.CroniumEditor.create(content, language.value) : null;
  language.addEventListener("change", function () {
    if (code) code.setLanguage(language.value);
    var current = content.value;
    var isStarter = !current.trim() || Object.keys(STARTERS).some(function (k) { return STARTERS[k] === current; });
    if (isStarter) {
      if (code) code.setValue(STARTERS[language.value] || "");
      else content.value = STARTERS[language.value] || "";
    }
  });

  // ---- time zones ----------------------------------------------------------------------
  function zoneOffsetMs(date, zone) {
    try {
      var parts = new Intl.DateTimeFormat("en-US", {
        timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit",
      }).formatToParts(date);
      var m = {};
      parts.forEach(function (p) { m[p.type] = p.value; });
      var asUtc = Date.UTC(+m.year, +m.month - 1, +m.day, +m.hour % 24, +m.minute, +m.second);
      return asUtc - Math.floor(date.getTime() / 1000) * 1000;
    } catch (e) {
      return 0; // a zone this browser does not know: treat as UTC
    }
  }

  function localToIso(value, zone) {
    if (!value) return "";
    var p = value.split(/[-T:]/).map(Number);
    if (p.length < 5 || p.some(isNaN)) return "";
    var guess = Date.UTC(p[0], p[1] - 1, p[2], p[3], p[4], p[5] || 0);
    var utc = guess - zoneOffsetMs(new Date(guess), zone);
    utc = guess - zoneOffsetMs(new Date(utc), zone);
    return new Date(utc).toISOString().replace(".000Z", "Z");
  }

  function isoToLocal(iso, zone) {
    if (!iso) return "";
    var d = new Date(iso);
    if (isNaN(d.getTime())) return "";
    return new Date(d.getTime() + zoneOffsetMs(d, zone)).toISOString().slice(0, 19);
  }

  // ---- schedule ------------------------------------------------------------------------
  var kindSelect = $("[data-schedule-kind]");
  var tzSelect = $("[data-timezone]");
  var UNITS = { seconds: 1, minutes: 60, hours: 3600, days: 86400 };

  function showKind() {
    var kind = kindSelect.value;
    $$("[data-kind]").forEach(function (el) { skip(el, el.dataset.kind.split(" ").indexOf(kind) < 0); });
  }

  function syncSchedule() {
    var zone = tzSelect.value || "UTC";
    var value = $("[data-interval-value]").value;
    var unit = UNITS[$("[data-interval-unit]").value] || 60;
    var n = Number(value);
    $("[data-every-seconds]").value = value === "" ? "" : (Number.isInteger(n) ? String(n * unit) : value);
    $("[data-at]").value = localToIso($("[data-at-local]").value, zone);
    $("[data-start-at]").value = localToIso($("[data-start-local]").value, zone);
  }

  kindSelect.addEventListener("change", showKind);
  // Capture phase: the hidden values are current before HTMX reads them for the preview.
  form.addEventListener("input", syncSchedule, true);
  form.addEventListener("change", syncSchedule, true);
  $("[data-at-local]").value = isoToLocal($("[data-at]").value, tzSelect.value);
  $("[data-start-local]").value = isoToLocal($("[data-start-at]").value, tzSelect.value);

  // ---- key/value rows (env vars, HTTP headers) ------------------------------------------
  var envDirty = isNew;
  function addKv(kind, key, value, storedKey) {
    var row = document.getElementById("kv-row").content.firstElementChild.cloneNode(true);
    var k = $("[data-k]", row);
    var v = $("[data-v]", row);
    k.value = key || "";
    v.value = value || "";
    if (kind === "headers") { k.placeholder = "Header-Name"; }
    if (storedKey) {
      row.dataset.stored = "true";
      v.placeholder = "stored value (unchanged)";
    }
    $('[data-kv="' + kind + '"]').appendChild(row);
    return row;
  }

  function collectKv(kind, field) {
    var out = {};
    $$('[data-kv="' + kind + '"] .kv-row').forEach(function (row) {
      var key = $("[data-k]", row).value.trim();
      var value = $("[data-v]", row).value;
      if (!key && !value) return;
      if (!key) throw fieldError(field, "a value needs a name");
      if (kind === "env" && row.dataset.stored && !value) {
        throw fieldError(field, "enter the value of " + key + " again, or remove it: saving changed variables replaces them all (stored values are never shown)");
      }
      out[key] = value;
    });
    return out;
  }

  form.addEventListener("click", function (ev) {
    var add = ev.target.closest("[data-kv-add]");
    if (add) {
      var row = addKv(add.dataset.kvAdd);
      if (add.dataset.kvAdd === "env") envDirty = true;
      $("[data-k]", row).focus();
    }
    var remove = ev.target.closest("[data-kv-remove]");
    if (remove) {
      if (remove.closest('[data-kv="env"]')) envDirty = true;
      remove.closest(".kv-row").remove();
    }
  });
  $('[data-kv="env"]').addEventListener("input", function () { envDirty = true; });

  (stored.env_keys || []).forEach(function (key) { addKv("env", key, "", true); });
  var headers = (stored.http && stored.http.headers) || {};
  Object.keys(headers).forEach(function (key) { addKv("headers", key, headers[key]); });

  // ---- tools: credentials, actions, templates ---------------------------------------------
  function credentialTool(id) {
    var found = data.credentials.filter(function (c) { return String(c.id) === String(id); })[0];
    return found ? found.tool : null;
  }

  function fillCredentials(select, selected) {
    select.innerHTML = "";
    option(select, "", data.credentials.length ? "Choose a credential…" : "No credentials yet", !selected);
    data.credentials.forEach(function (c) { option(select, c.id, c.name + " (" + c.tool + ")", String(c.id) === String(selected)); });
  }

  function fillActions(select, tool, selected) {
    select.innerHTML = "";
    var names = [];
    data.tools.forEach(function (t) { if (!tool || t.tool === tool) names = names.concat(t.actions); });
    option(select, "", "Choose an action…", !selected);
    names.forEach(function (n) { option(select, n, n, n === selected); });
    if (selected && names.indexOf(selected) < 0) option(select, selected, selected, true);
  }

  function fillTemplates(select, tool, selected) {
    select.innerHTML = "";
    option(select, "", "None", !selected);
    data.templates.forEach(function (t) {
      if (!tool || t.tool === tool) option(select, t.id, t.name + " (" + t.action + ")", String(t.id) === String(selected));
    });
  }

  function splitTemplate(params) {
    var copy = Object.assign({}, params || {});
    var id = copy.template_id;
    delete copy.template_id;
    return { id: id, params: copy };
  }

  var toolCred = $("[data-tool-credential]");
  var toolAction = $("[data-tool-action]");
  var toolTemplate = $("[data-tool-template]");
  var toolParams = form.querySelector('[name="tool.params"]');
  var storedTool = stored.tool || {};
  var toolSplit = splitTemplate(storedTool.params);
  fillCredentials(toolCred, storedTool.credential_id);
  fillActions(toolAction, credentialTool(storedTool.credential_id), storedTool.action);
  fillTemplates(toolTemplate, credentialTool(storedTool.credential_id), toolSplit.id);
  toolParams.value = JSON.stringify(toolSplit.params, null, 2);
  toolCred.addEventListener("change", function () {
    var tool = credentialTool(toolCred.value);
    fillActions(toolAction, tool, toolAction.value);
    fillTemplates(toolTemplate, tool, toolTemplate.value);
  });
  toolTemplate.addEventListener("change", function () {
    var t = data.templates.filter(function (x) { return String(x.id) === toolTemplate.value; })[0];
    if (t && !toolAction.value) toolAction.value = t.action;
  });

  // ---- conditional actions -----------------------------------------------------------------
  var actionBox = $("[data-actions]");
  function showActionParts(row) {
    var on = $('[data-a="on"]', row).value;
    var type = $('[data-a="type"]', row).value;
    $$("[data-a-show]", row).forEach(function (el) {
      var what = el.dataset.aShow;
      el.hidden = what === "condition" ? on !== "on_condition" : what !== type;
    });
  }

  function reindexActions() {
    $$(".action-row", actionBox).forEach(function (row, i) {
      $("[data-a-error]", row).setAttribute("data-error-for", "actions." + i);
    });
  }

  function addAction(a) {
    a = a || { on: "on_failure", type: "tool", params: {} };
    var row = document.getElementById("action-row").content.firstElementChild.cloneNode(true);
    var split = splitTemplate(a.params);
    $('[data-a="on"]', row).value = a.on;
    $('[data-a="condition"]', row).value = String(a.condition !== false);
    $('[data-a="type"]', row).value = a.type;
    var events = $('[data-a="event_id"]', row);
    option(events, "", data.events.length ? "Choose an event…" : "No other events yet", !a.event_id);
    data.events.forEach(function (e) { option(events, e.id, e.name, String(e.id) === String(a.event_id)); });
    if (!isNew && String(a.event_id) === String(stored.id)) option(events, stored.id, stored.name + " (this event)", true);
    var tool = credentialTool(a.credential_id);
    fillCredentials($('[data-a="credential_id"]', row), a.credential_id);
    fillActions($('[data-a="action"]', row), tool, a.action);
    fillTemplates($('[data-a="template"]', row), tool, split.id);
    $('[data-a="params"]', row).value = JSON.stringify(split.params, null, 2);
    actionBox.appendChild(row);
    showActionParts(row);
    reindexActions();
    return row;
  }

  actionBox.addEventListener("change", function (ev) {
    var row = ev.target.closest(".action-row");
    if (!row) return;
    showActionParts(row);
    if (ev.target.matches('[data-a="credential_id"]')) {
      var tool = credentialTool(ev.target.value);
      fillActions($('[data-a="action"]', row), tool, $('[data-a="action"]', row).value);
      fillTemplates($('[data-a="template"]', row), tool, $('[data-a="template"]', row).value);
    }
  });
  form.addEventListener("click", function (ev) {
    if (ev.target.closest("[data-action-add]")) $('[data-a="on"]', addAction()).focus();
    var remove = ev.target.closest("[data-action-remove]");
    if (remove) { remove.closest(".action-row").remove(); reindexActions(); }
  });
  (stored.actions || []).forEach(addAction);

  function collectActions() {
    return $$(".action-row", actionBox).map(function (row, i) {
      var get = function (name) { return $('[data-a="' + name + '"]', row).value; };
      var a = { on: get("on"), type: get("type") };
      if (a.on === "on_condition") a.condition = get("condition") === "true";
      if (a.type === "run_event") {
        a.event_id = get("event_id") ? Number(get("event_id")) : null;
        return a;
      }
      a.credential_id = get("credential_id") ? Number(get("credential_id")) : null;
      a.action = get("action") || null;
      var params;
      try { params = JSON.parse(get("params") || "{}"); }
      catch (e) { throw fieldError("actions." + i, "parameters: not valid JSON: " + e.message); }
      if (get("template")) params.template_id = Number(get("template"));
      a.params = params;
      return a;
    });
  }

  // ---- webhook -------------------------------------------------------------------------------
  var hookOn = $("[data-webhook-enabled]");
  function showHook() { $("[data-webhook-details]").hidden = !hookOn.checked; }
  hookOn.addEventListener("change", showHook);

  // An error shown next to a field goes away once that field is edited.
  form.addEventListener("input", function (ev) {
    var name = ev.target.name;
    if (!name) return;
    var slot = form.querySelector('[data-error-for="' + CSS.escape(name) + '"]');
    if (slot) slot.textContent = "";
    ev.target.removeAttribute("aria-invalid");
  });

  // ---- the body --------------------------------------------------------------------------------
  form.croniumBody = function () {
    syncSchedule();
    var body = window.Cronium.formBody(form);
    // Empty list and object fields mean "none", not null.
    if (body.tags == null) body.tags = [];
    if (body.input == null) body.input = {};
    if (body.tool && body.tool.params == null) body.tool.params = {};
    var kind = body.schedule && body.schedule.kind;
    if (kind !== "cron" && body.schedule) delete body.schedule.timezone;
    if (body.type === "script") {
      body.targets = body.targets || {};
      body.targets.server_ids = $$("[data-server]:checked").map(function (el) { return Number(el.value); });
    }
    if (body.type === "http") body.http.headers = collectKv("headers", "http.headers");
    if (body.type === "tool" && toolTemplate.value) {
      body.tool.params = Object.assign({ template_id: Number(toolTemplate.value) }, body.tool.params || {});
    }
    if (envDirty) body.env = collectKv("env", "env");
    body.actions = collectActions();
    body.webhook = body.webhook || {};
    var removeSecret = $("[data-remove-secret]");
    if (removeSecret && removeSecret.checked) body.webhook.secret = null;
    return body;
  };

  showType();
  showKind();
  showHook();
})();
