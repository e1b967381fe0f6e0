// The workflow editor: add nodes (one event each), drag them, connect output handles to
// input handles, pick each edge's type, check the graph as it changes, save via the API.
// Pointer and keyboard input on the canvas are in workflow-canvas.js.
(function () {
  "use strict";

  var G, graph, form, canvas, popover;
  var nodes = [];
  var edges = [];
  var selected = null; // {kind: "node", id} | {kind: "edge", index}
  var nextId = 1;
  var eventNames = {};

  function $(id) { return document.getElementById(id); }

  function slug(name) {
    var s = String(name || "").toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 100);
    return s || "node";
  }

  function uniqueKey(base) {
    var used = {};
    nodes.forEach(function (n) { used[n.key] = true; });
    if (!used[base]) return base;
    for (var i = 2; ; i++) {
      var candidate = base.slice(0, 95) + "-" + i;
      if (!used[candidate]) return candidate;
    }
  }

  function nodeById(id) {
    for (var i = 0; i < nodes.length; i++) if (nodes[i].id === id) return nodes[i];
    return null;
  }

  function validate() {
    return window.CroniumWorkflowChecks.validate(nodes, edges, nodeById);
  }

  function showIssues(result) {
    var list = form.querySelector("[data-client-issues]");
    list.textContent = "";
    result.issues.forEach(function (text) {
      var li = document.createElement("li");
      li.textContent = text;
      list.appendChild(li);
    });
    form.querySelector("[data-no-issues]").hidden = result.issues.length > 0 || nodes.length === 0 ||
      form.querySelector("[data-api-issues]").children.length > 0;
    var box = form.querySelector("[data-form-error]");
    if (!result.issues.length && box.dataset.client) { box.hidden = true; box.textContent = ""; delete box.dataset.client; }
    $("wf-messages").classList.toggle("has-issues", result.issues.length > 0);
  }

  // ---- drawing -----------------------------------------------------------------------------
  function render() {
    var result = validate();
    graph.badNodes = result.badNodes;
    graph.badEdges = result.badEdges;
    graph.selected = selected;
    graph.draw(nodes, edges);
    showIssues(result);
    refreshEdgeForm();
    refreshInspector();
    $("wf-delete-selected").disabled = !selected;
    placePopover();
  }

  function redrawEdges() {
    graph.selected = selected;
    graph.drawEdges();
    placePopover();
  }

  function refreshEdgeForm() {
    ["wf-edge-from", "wf-edge-to"].forEach(function (id, which) {
      var sel = $(id);
      var keep = sel.value;
      sel.textContent = "";
      nodes.forEach(function (n) {
        var opt = document.createElement("option");
        opt.value = n.id;
        opt.textContent = n.key;
        sel.appendChild(opt);
      });
      if (keep && nodeById(keep)) sel.value = keep;
      // "To" defaults to the newest node other than "From".
      if (which === 1 && nodes.length > 1 && sel.value === $("wf-edge-from").value) {
        sel.selectedIndex = sel.value === nodes[nodes.length - 1].id ? 0 : nodes.length - 1;
      }
    });
    $("wf-add-edge").disabled = nodes.length < 1;
  }

  function refreshInspector() {
    var box = $("wf-inspector");
    var node = selected && selected.kind === "node" ? nodeById(selected.id) : null;
    box.hidden = !node;
    if (!node) return;
    box.querySelector("[data-inspector-title]").textContent = node.key;
    if (document.activeElement !== $("wf-node-key")) $("wf-node-key").value = node.key;
    $("wf-node-event").value = String(node.event_id);
    if (document.activeElement !== $("wf-node-input")) $("wf-node-input").value = node.input ? JSON.stringify(node.input) : "";
    $("wf-node-input-error").textContent = "";
  }

  // ---- selection, removal -------------------------------------------------------------------
  function select(sel, openPopover) {
    selected = sel;
    if (!sel || sel.kind !== "edge" || !openPopover) popover.hidden = true;
    render();
    if (sel && sel.kind === "edge" && openPopover) showPopover();
  }

  function removeSelected() {
    if (!selected) return;
    if (selected.kind === "node") {
      var id = selected.id;
      nodes = nodes.filter(function (n) { return n.id !== id; });
      edges = edges.filter(function (e) { return e.from !== id && e.to !== id; });
    } else {
      edges.splice(selected.index, 1);
    }
    selected = null;
    popover.hidden = true;
    render();
  }

  // ---- the edge popover ---------------------------------------------------------------------
  function edgeValue(e) { return e.type === "on_condition" ? "on_condition:" + e.condition : e.type; }

  function setEdgeType(edge, value) {
    var parts = value.split(":");
    edge.type = parts[0];
    edge.condition = parts[0] === "on_condition" ? parts[1] === "true" : null;
  }

  function placePopover() {
    if (popover.hidden || !selected || selected.kind !== "edge") return;
    var edge = edges[selected.index];
    if (!edge || !edge.mid) { popover.hidden = true; return; }
    // The popover scrolls with the canvas (both inside the scrolling wrapper).
    popover.style.left = Math.max(0, edge.mid.x - 120) + "px";
    popover.style.top = (edge.mid.y + 10) + "px";
  }

  function showPopover() {
    var edge = edges[selected.index];
    $("wf-edge-type").value = edgeValue(edge);
    popover.hidden = false;
    placePopover();
    $("wf-edge-type").focus();
  }

  function closePopover() {
    popover.hidden = true;
    var g = selected && selected.kind === "edge" ? canvas.querySelector('.wf-edge[data-index="' + selected.index + '"]') : null;
    if (g) g.focus();
  }

  // ---- adding -------------------------------------------------------------------------------
  function freeSpot() {
    for (var i = 0; ; i++) {
      var x = G.PAD + (i % 4) * (G.NODE_W + 100);
      var y = G.PAD + Math.floor(i / 4) * (G.NODE_H + 50);
      var taken = nodes.some(function (n) { return Math.abs(n.position.x - x) < G.NODE_W && Math.abs(n.position.y - y) < G.NODE_H + 10; });
      if (!taken) return { x: x, y: y };
    }
  }

  function addEdge(from, to, value) {
    var edge = { from: from, to: to, type: "on_success", condition: null };
    setEdgeType(edge, value || "on_success");
    edges.push(edge);
    return edges.length - 1;
  }

  var keyTouched = false;
  function suggestKey() {
    var sel = $("wf-new-event");
    if (!sel || keyTouched) return;
    var opt = sel.options[sel.selectedIndex];
    $("wf-new-key").value = opt ? uniqueKey(slug(opt.dataset.name)) : "";
  }

  function addNodeFromForm() {
    var sel = $("wf-new-event");
    var raw = $("wf-new-input").value.trim();
    var input = null;
    $("wf-new-input-error").textContent = "";
    if (raw) {
      try { input = JSON.parse(raw); } catch (e) { $("wf-new-input-error").textContent = "Not valid JSON: " + e.message; return; }
      if (input === null || typeof input !== "object" || Array.isArray(input)) { $("wf-new-input-error").textContent = "The input must be a JSON object."; return; }
    }
    var opt = sel.options[sel.selectedIndex];
    var key = $("wf-new-key").value.trim() || uniqueKey(slug(opt.dataset.name));
    var node = { id: "n" + nextId++, key: key, event_id: Number(sel.value), event_name: opt.dataset.name, input: input, position: freeSpot() };
    nodes.push(node);
    keyTouched = false;
    $("wf-new-input").value = "";
    suggestKey();
    select({ kind: "node", id: node.id });
  }

  // ---- the inspector of the selected node -----------------------------------------------------
  function bindInspector() {
    $("wf-node-key").addEventListener("input", function () {
      var node = selected && nodeById(selected.id);
      if (!node) return;
      node.key = this.value.trim();
      render();
    });
    $("wf-node-event").addEventListener("change", function () {
      var node = selected && nodeById(selected.id);
      if (!node) return;
      node.event_id = Number(this.value);
      node.event_name = eventNames[node.event_id] || "";
      render();
    });
    $("wf-node-input").addEventListener("change", function () {
      var node = selected && nodeById(selected.id);
      if (!node) return;
      var raw = this.value.trim();
      if (!raw) { node.input = null; return; }
      try {
        var value = JSON.parse(raw);
        if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error("the input must be a JSON object");
        node.input = value;
        $("wf-node-input-error").textContent = "";
      } catch (e) {
        $("wf-node-input-error").textContent = "Not saved: " + e.message;
      }
    });
    $("wf-node-remove").addEventListener("click", removeSelected);
  }

  // ---- start ----------------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", function () {
    form = $("wf-form");
    canvas = $("wf-canvas");
    if (!form || !canvas) return;
    G = window.CroniumGraph;
    popover = $("wf-edge-popover");
    (G.readJson("wf-events") || []).forEach(function (e) { eventNames[e.id] = e.name; });
    var data = G.fromApi(G.readJson("wf-graph-data") || {});
    nodes = data.nodes.map(function (n) {
      return { id: n.id, key: n.key, event_id: n.event_id, event_name: eventNames[n.event_id] || "", input: n.input || null, position: n.position };
    });
    edges = data.edges;
    nextId = nodes.length + 1;
    graph = G.create(canvas, { mode: "edit" });
    canvas.tabIndex = -1;

    window.CroniumWorkflowCanvas.bind(canvas, {
      graph: graph,
      nodeById: nodeById,
      addEdge: addEdge,
      select: select,
      selected: function () { return selected; },
      setSelected: function (sel) { selected = sel; },
      render: render,
      redrawEdges: redrawEdges,
      removeSelected: removeSelected,
    });
    document.addEventListener("keydown", function (ev) {
      if (ev.key === "Escape" && !popover.hidden) { ev.preventDefault(); closePopover(); return; }
      var active = document.activeElement;
      var idle = !active || active === document.body || active === canvas || popover.contains(active);
      if (ev.key === "Delete" && selected && idle) { ev.preventDefault(); removeSelected(); }
    });
    $("wf-edge-type").addEventListener("change", function () {
      if (!selected || selected.kind !== "edge") return;
      setEdgeType(edges[selected.index], this.value);
      render();
    });
    $("wf-edge-done").addEventListener("click", closePopover);
    $("wf-edge-remove").addEventListener("click", removeSelected);
    $("wf-delete-selected").addEventListener("click", removeSelected);
    if ($("wf-new-event")) {
      $("wf-new-event").addEventListener("change", suggestKey);
      $("wf-new-key").addEventListener("input", function () { keyTouched = this.value.trim() !== ""; });
      $("wf-add-node").addEventListener("click", addNodeFromForm);
      suggestKey();
    }
    $("wf-add-edge").addEventListener("click", function () {
      if (!nodes.length) return;
      var index = addEdge($("wf-edge-from").value, $("wf-edge-to").value, $("wf-edge-when").value);
      select({ kind: "edge", index: index });
    });
    bindInspector();
    window.CroniumWorkflowSettings.bind(form);
    window.CroniumWorkflowSave.bind(form, {
      nodes: function () { return nodes; },
      edges: function () { return edges; },
      graph: graph,
      nodeById: nodeById,
      validate: validate,
      render: render,
    });
    // Enter in the editor's own inputs must not save the workflow: in "Add a node" it adds.
    form.addEventListener("keydown", function (ev) {
      if (ev.key !== "Enter" || ev.target.tagName !== "INPUT" || !ev.target.closest("[data-skip]")) return;
      ev.preventDefault();
      if (ev.target.closest(".wf-add-node")) addNodeFromForm();
    });
    render();
  });
})();
