// Saving the workflow: the settings form and the graph as the API's JSON, checked first in
// the browser, then POST or PATCH; the API's errors about nodes and edges are listed by key.
(function () {
  "use strict";

  var form, ed;

  function body() {
    var data = window.CroniumWorkflowSettings.body(form);
    var keys = {};
    ed.nodes().forEach(function (n) { keys[n.id] = n.key; });
    data.nodes = ed.nodes().map(function (n) {
      return { key: n.key, event_id: n.event_id, input: n.input, position: { x: n.position.x, y: n.position.y } };
    });
    data.edges = ed.edges().map(function (e) {
      var out = { from: keys[e.from], to: keys[e.to], type: e.type };
      if (e.type === "on_condition") out.condition = e.condition;
      return out;
    });
    return data;
  }

  // The API's errors about the graph ("nodes[2].event_id", "edges.0.to") are listed in the
  // messages panel by node key and marked on the canvas; the rest go next to their fields.
  var GRAPH_FIELD = /^(nodes|edges)(?:\[(\d+)\]|\.(\d+))?(?:\.(.+))?$/;

  function graphMessage(m, message) {
    var i = m[2] !== undefined ? Number(m[2]) : m[3] !== undefined ? Number(m[3]) : null;
    var text = String(message || "").replace(/^(nodes|edges)[^:]*:\s*/, "");
    if (i === null) return text;
    var nodes = ed.nodes(), edges = ed.edges();
    if (m[1] === "nodes" && nodes[i]) {
      ed.graph.badNodes[nodes[i].id] = true;
      return "Node “" + nodes[i].key + "”" + (m[4] ? " (" + m[4] + ")" : "") + ": " + text;
    }
    if (m[1] === "edges" && edges[i]) {
      ed.graph.badEdges[i] = true;
      var from = ed.nodeById(edges[i].from), to = ed.nodeById(edges[i].to);
      return "Edge " + (from ? from.key : "?") + " → " + (to ? to.key : "?") + (m[4] ? " (" + m[4] + ")" : "") + ": " + text;
    }
    return text;
  }

  function showApiError(error) {
    var details = Array.isArray(error.details) ? error.details
      : error.details && error.details.field ? [{ field: error.details.field, message: error.message }] : [];
    var list = form.querySelector("[data-api-issues]");
    list.textContent = "";
    var rest = [];
    details.forEach(function (d) {
      var m = GRAPH_FIELD.exec(d.field || "");
      if (!m) { rest.push(d); return; }
      var li = document.createElement("li");
      li.textContent = graphMessage(m, d.message);
      list.appendChild(li);
    });
    if (rest.length || !list.children.length) {
      window.Cronium.showErrors(form, { message: error.message || "Saving failed", details: rest });
    }
    ed.graph.draw(ed.nodes(), ed.edges());
    form.querySelector("[data-no-issues]").hidden = list.children.length > 0 || ed.nodes().length === 0;
    if (!form.querySelector('[aria-invalid="true"]')) document.getElementById("wf-messages").scrollIntoView({ block: "nearest" });
  }

  async function save(ev) {
    ev.preventDefault();
    window.Cronium.clearErrors(form);
    form.querySelector("[data-api-issues]").textContent = "";
    var result = ed.validate();
    if (result.issues.length) {
      ed.render();
      var box = form.querySelector("[data-form-error]");
      box.textContent = "Fix the problems listed above before saving.";
      box.dataset.client = "1";
      box.hidden = false;
      document.getElementById("wf-messages").scrollIntoView({ block: "nearest" });
      return;
    }
    var data;
    try {
      data = body();
    } catch (err) {
      window.Cronium.showErrors(form, { message: err.message, details: err.details || [] });
      return;
    }
    var button = document.getElementById("wf-save");
    button.disabled = true;
    var response;
    try {
      response = await window.Cronium.api(form.dataset.method, form.dataset.url, data);
    } finally {
      button.disabled = false;
    }
    if (response.ok) {
      window.Cronium.afterSuccess(form, response.data);
      return;
    }
    showApiError((response.data && response.data.error) || { message: "HTTP " + response.status });
  }

  window.CroniumWorkflowSave = {
    bind: function (theForm, editor) {
      form = theForm;
      ed = editor;
      form.addEventListener("submit", save);
    },
  };
})();
