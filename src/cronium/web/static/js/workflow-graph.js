// Draws a workflow graph: nodes as positioned buttons/links, typed edges as SVG curves.
// Shared by the editor (mode "edit"), the workflow page ("view") and the live run ("run").
(function () {
  "use strict";

  var NODE_W = 180;
  var NODE_H = 56;
  var PAD = 40;
  var SVG_NS = "http://www.w3.org/2000/svg";
  var TYPE_LABELS = { on_success: "on success", on_failure: "on failure", always: "always" };

  function edgeLabel(edge) {
    if (edge.type === "on_condition") return "if " + (edge.condition ? "true" : "false");
    return TYPE_LABELS[edge.type] || edge.type;
  }

  function svg(tag, attrs) {
    var el = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs || {}).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    return el;
  }

  function readJson(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  // Nodes saved without positions (all at the origin) get a layered layout: depth = longest
  // path from a root, one column per depth.
  function autoLayout(nodes, edges) {
    var spread = nodes.some(function (n) { return n.position && (n.position.x || n.position.y); });
    if (spread || nodes.length < 2) return;
    var depth = {};
    nodes.forEach(function (n) { depth[n.key] = 0; });
    for (var pass = 0; pass < nodes.length; pass++) {
      var changed = false;
      edges.forEach(function (e) {
        if (depth[e.from] !== undefined && depth[e.to] !== undefined && depth[e.to] < depth[e.from] + 1 && depth[e.from] < nodes.length) {
          depth[e.to] = depth[e.from] + 1;
          changed = true;
        }
      });
      if (!changed) break;
    }
    var rows = {};
    nodes.forEach(function (n) {
      var d = depth[n.key];
      rows[d] = (rows[d] || 0) + 1;
      n.position = { x: PAD + d * (NODE_W + 110), y: PAD + (rows[d] - 1) * (NODE_H + 44) };
    });
  }

  function Graph(canvas, opts) {
    this.canvas = canvas;
    this.mode = opts.mode || "view";
    this.nodes = [];
    this.edges = [];
    this.selected = null;
    this.badEdges = {};
    this.badNodes = {};
    this.svg = svg("svg", { class: "wf-edges", "aria-hidden": this.mode === "edit" ? "false" : "true" });
    this.defs = svg("defs");
    ["on_success", "on_failure", "always", "on_condition", "pending", "invalid"].forEach(function (t) {
      var marker = svg("marker", { id: "wf-arrow-" + t, viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" });
      marker.appendChild(svg("path", { d: "M0,0 L10,5 L0,10 z", class: "wf-arrow type-" + t }));
      this.defs.appendChild(marker);
    }, this);
    this.svg.appendChild(this.defs);
    this.edgeLayer = svg("g");
    this.svg.appendChild(this.edgeLayer);
    this.nodeLayer = document.createElement("div");
    this.nodeLayer.className = "wf-nodes";
    canvas.textContent = "";
    canvas.appendChild(this.svg);
    canvas.appendChild(this.nodeLayer);
  }

  Graph.prototype.nodeById = function (id) {
    for (var i = 0; i < this.nodes.length; i++) if (this.nodes[i].id === id) return this.nodes[i];
    return null;
  };

  // nodes: [{id, key, event_id, event_name?, position, status?, execution_id?}]
  // edges: [{from: node id, to: node id, type, condition}] (ids, so a rename keeps edges)
  Graph.prototype.draw = function (nodes, edges) {
    this.nodes = nodes;
    this.edges = edges;
    this.drawNodes();
    this.drawEdges();
  };

  Graph.prototype.nodeElement = function (node) {
    var wrap = document.createElement("div");
    wrap.className = "wf-node";
    wrap.dataset.nodeKey = node.key;
    wrap.dataset.nodeId = node.id;
    var body;
    if (this.mode === "run" && node.execution_id) {
      body = document.createElement("a");
      body.href = "/executions/" + node.execution_id;
    } else if (this.mode === "view") {
      body = document.createElement("a");
      body.href = "/events/" + node.event_id;
    } else {
      body = document.createElement(this.mode === "edit" ? "button" : "span");
      if (this.mode === "edit") body.type = "button";
    }
    body.className = "wf-node-body";
    var title = document.createElement("span");
    title.className = "wf-node-key";
    title.textContent = node.key;
    var sub = document.createElement("span");
    sub.className = "wf-node-sub";
    sub.textContent = node.event_name || ("event " + node.event_id);
    if (this.mode === "run") {
      var status = document.createElement("span");
      status.className = "wf-node-status";
      sub.textContent = " · " + sub.textContent;
      sub.prepend(status);
    }
    body.appendChild(title);
    body.appendChild(sub);
    wrap.appendChild(body);
    if (this.mode === "edit") {
      var hin = document.createElement("span");
      hin.className = "handle-in";
      hin.title = "Drop an edge here";
      var hout = document.createElement("span");
      hout.className = "handle-out";
      hout.title = "Drag to another node to connect";
      wrap.appendChild(hin);
      wrap.appendChild(hout);
    }
    return wrap;
  };

  Graph.prototype.drawNodes = function () {
    var focusedKey = document.activeElement && document.activeElement.closest && document.activeElement.closest(".wf-node");
    var focusId = focusedKey ? focusedKey.dataset.nodeId : null;
    this.nodeLayer.textContent = "";
    this.nodes.forEach(function (node) {
      var el = this.nodeElement(node);
      node.el = el;
      this.place(node);
      this.paintNode(node);
      this.nodeLayer.appendChild(el);
    }, this);
    if (focusId) {
      var again = this.nodeLayer.querySelector('[data-node-id="' + focusId + '"] .wf-node-body');
      if (again) again.focus();
    }
    this.resize();
  };

  Graph.prototype.paintNode = function (node) {
    var el = node.el;
    if (!el) return;
    el.classList.toggle("selected", !!(this.selected && this.selected.kind === "node" && this.selected.id === node.id));
    el.classList.toggle("invalid", !!this.badNodes[node.id]);
    var body = el.querySelector(".wf-node-body");
    if (this.mode === "run") {
      var status = node.status || "pending";
      el.dataset.status = status;
      el.className = el.className.replace(/\bstatus-\S+/g, "").trim() + " status-" + status;
      el.querySelector(".wf-node-status").textContent = status === "absent" ? "not in this run" : status.replace("_", " ");
      body.setAttribute("aria-label", node.key + ": " + status + (node.execution_id ? ", open its execution" : ""));
      if (node.execution_id && body.tagName !== "A") {
        var fresh = this.nodeElement(node);
        el.replaceWith(fresh);
        node.el = fresh;
        this.place(node);
        this.paintNode(node);
      }
    } else if (this.mode === "edit") {
      body.setAttribute("aria-pressed", el.classList.contains("selected") ? "true" : "false");
    }
  };

  Graph.prototype.place = function (node) {
    node.el.style.left = node.position.x + "px";
    node.el.style.top = node.position.y + "px";
  };

  Graph.prototype.resize = function () {
    var w = 0;
    var h = 0;
    this.nodes.forEach(function (n) {
      w = Math.max(w, n.position.x + NODE_W + PAD);
      h = Math.max(h, n.position.y + NODE_H + PAD);
    });
    var minH = this.mode === "edit" ? 380 : 160;
    w = Math.max(w, 320);
    h = Math.max(h, minH);
    this.canvas.style.width = w + "px";
    this.canvas.style.height = h + "px";
    this.svg.setAttribute("width", w);
    this.svg.setAttribute("height", h);
  };

  Graph.prototype.anchors = function (from, to) {
    return {
      sx: from.position.x + NODE_W + 8, sy: from.position.y + NODE_H / 2,
      ex: to.position.x - 9, ey: to.position.y + NODE_H / 2,
    };
  };

  function curve(sx, sy, ex, ey) {
    var dx = Math.max(40, Math.abs(ex - sx) / 2);
    var c1x = sx + dx, c2x = ex - dx;
    return {
      d: "M" + sx + "," + sy + " C" + c1x + "," + sy + " " + c2x + "," + ey + " " + ex + "," + ey,
      mx: (sx + 3 * c1x + 3 * c2x + ex) / 8,
      my: (sy + 3 * sy + 3 * ey + ey) / 8,
    };
  }

  Graph.prototype.edgeCurve = function (edge) {
    var from = this.nodeById(edge.from);
    var to = this.nodeById(edge.to);
    if (!from || !to) return null;
    var a = this.anchors(from, to);
    if (from === to) {
      // An edge to itself (invalid; drawn so it can be seen and removed): a loop above.
      var x = from.position.x + NODE_W / 2, y = from.position.y;
      return { d: "M" + (x + 30) + "," + y + " C" + (x + 60) + "," + (y - 50) + " " + (x - 60) + "," + (y - 50) + " " + (x - 30) + "," + y, mx: x, my: y - 38 };
    }
    // Parallel edges (one pair, several types) fan out so each label stays readable.
    var twins = this.edges.filter(function (e) { return e.from === edge.from && e.to === edge.to; });
    var shift = (twins.indexOf(edge) - (twins.length - 1) / 2) * 14;
    return curve(a.sx, a.sy + shift, a.ex, a.ey + shift);
  };

  Graph.prototype.drawEdges = function () {
    this.edgeLayer.textContent = "";
    this.edges.forEach(function (edge, index) {
      var c = this.edgeCurve(edge);
      if (!c) return;
      var from = this.nodeById(edge.from), to = this.nodeById(edge.to);
      var bad = !!this.badEdges[index];
      var typeClass = "type-" + edge.type + (edge.type === "on_condition" ? " cond-" + edge.condition : "");
      var g = svg("g", { class: "wf-edge " + typeClass + (bad ? " invalid" : ""), "data-edge": from.key + "->" + to.key, "data-edge-type": edge.type, "data-index": index });
      if (this.mode === "edit") {
        g.setAttribute("tabindex", "0");
        g.setAttribute("role", "button");
        g.setAttribute("aria-label", "Edge " + from.key + " to " + to.key + ", " + edgeLabel(edge) + (bad ? " (invalid)" : ""));
        g.appendChild(svg("path", { d: c.d, class: "wf-edge-hit" }));
      }
      if (this.selected && this.selected.kind === "edge" && this.selected.index === index) g.classList.add("selected");
      if (this.mode === "run" && this.edgeLit(edge)) g.classList.add("lit");
      var marker = bad ? "invalid" : this.mode === "run" && !this.edgeLit(edge) ? "pending" : edge.type;
      g.appendChild(svg("path", { d: c.d, class: "wf-edge-line " + typeClass, "marker-end": "url(#wf-arrow-" + marker + ")" }));
      var label = svg("text", { x: c.mx, y: c.my - 6, class: "wf-edge-label", "text-anchor": "middle" });
      label.textContent = edgeLabel(edge);
      g.appendChild(label);
      edge.mid = { x: c.mx, y: c.my };
      this.edgeLayer.appendChild(g);
    }, this);
  };

  // In the run view an edge is lit once its parent has finished.
  Graph.prototype.edgeLit = function (edge) {
    var from = this.nodeById(edge.from);
    return !!from && ["succeeded", "failed", "timed_out", "partial", "cancelled"].indexOf(from.status) >= 0;
  };

  // Prepare API-shaped graph data ({nodes: [{key, …}], edges: [{from: key, to: key, …}]}) for
  // drawing: ids for the nodes, edges by id.
  function fromApi(data) {
    var nodes = (data.nodes || []).map(function (n, i) {
      return Object.assign({}, n, { id: "n" + (i + 1), position: { x: (n.position && n.position.x) || 0, y: (n.position && n.position.y) || 0 } });
    });
    var byKey = {};
    nodes.forEach(function (n) { byKey[n.key] = n.id; });
    var keyed = (data.edges || []).map(function (e) { return { from: e.from, to: e.to }; });
    autoLayout(nodes, keyed);
    var edges = (data.edges || []).filter(function (e) { return byKey[e.from] && byKey[e.to]; }).map(function (e) {
      return { from: byKey[e.from], to: byKey[e.to], type: e.type, condition: e.type === "on_condition" ? !!e.condition : null };
    });
    return { nodes: nodes, edges: edges };
  }

  window.CroniumGraph = {
    NODE_W: NODE_W, NODE_H: NODE_H, PAD: PAD,
    create: function (canvas, opts) { return new Graph(canvas, opts || {}); },
    fromApi: fromApi, readJson: readJson, edgeLabel: edgeLabel,
  };

  // The workflow page: a read-only drawing.
  document.addEventListener("DOMContentLoaded", function () {
    var canvas = document.getElementById("wf-canvas");
    if (!canvas || canvas.dataset.mode !== "view") return;
    var data = fromApi(readJson("wf-graph-data") || {});
    window.CroniumGraph.create(canvas, { mode: "view" }).draw(data.nodes, data.edges);
  });
})();
