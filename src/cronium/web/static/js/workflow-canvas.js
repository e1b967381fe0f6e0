// The workflow editor's canvas input: drag a node, draw an edge from a node's output handle
// to another node, and the keyboard (Delete removes, Enter or Space opens an edge's
// popover, arrows move a node). The graph and the selection stay in workflow-editor.js.
(function () {
  "use strict";

  // `ed`: the editor's graph and actions (see workflow-editor.js).
  function bind(canvas, ed) {
    var G = window.CroniumGraph;

    function point(ev) {
      var rect = canvas.getBoundingClientRect();
      return { x: ev.clientX - rect.left, y: ev.clientY - rect.top };
    }

    var drag = null;

    function onPointerDown(ev) {
      if (ev.button !== 0) return;
      var wrap = ev.target.closest(".wf-node");
      if (wrap && ev.target.closest(".handle-out")) {
        ev.preventDefault();
        var p = point(ev);
        var line = document.createElementNS("http://www.w3.org/2000/svg", "path");
        line.setAttribute("class", "wf-edge-draft");
        ed.graph.svg.appendChild(line);
        drag = { kind: "connect", from: wrap.dataset.nodeId, line: line, start: p };
        updateDraft(p);
      } else if (wrap && ev.target.closest(".wf-node-body")) {
        var node = ed.nodeById(wrap.dataset.nodeId);
        var q = point(ev);
        drag = { kind: "move", node: node, dx: q.x - node.position.x, dy: q.y - node.position.y, start: q, moved: false };
      } else if (!ev.target.closest(".wf-edge") && !ev.target.closest(".wf-popover")) {
        if (ed.selected()) ed.select(null);
        return;
      } else {
        return;
      }
      document.addEventListener("pointermove", onPointerMove);
      document.addEventListener("pointerup", onPointerUp);
    }

    function updateDraft(p) {
      var from = ed.nodeById(drag.from);
      var sx = from.position.x + G.NODE_W, sy = from.position.y + G.NODE_H / 2;
      var dx = Math.max(30, Math.abs(p.x - sx) / 2);
      drag.line.setAttribute("d", "M" + sx + "," + sy + " C" + (sx + dx) + "," + sy + " " + (p.x - dx) + "," + p.y + " " + p.x + "," + p.y);
    }

    function onPointerMove(ev) {
      if (!drag) return;
      var p = point(ev);
      if (drag.kind === "connect") { updateDraft(p); return; }
      if (!drag.moved && Math.abs(p.x - drag.start.x) + Math.abs(p.y - drag.start.y) < 4) return;
      drag.moved = true;
      drag.node.position.x = Math.max(0, Math.round((p.x - drag.dx) / 10) * 10);
      drag.node.position.y = Math.max(0, Math.round((p.y - drag.dy) / 10) * 10);
      ed.graph.place(drag.node);
      ed.graph.resize();
      ed.redrawEdges();
    }

    function onPointerUp(ev) {
      document.removeEventListener("pointermove", onPointerMove);
      document.removeEventListener("pointerup", onPointerUp);
      var d = drag;
      drag = null;
      if (!d) return;
      if (d.kind === "connect") {
        d.line.remove();
        var hit = document.elementFromPoint(ev.clientX, ev.clientY);
        var target = hit && hit.closest ? hit.closest(".wf-node") : null;
        if (!target || !canvas.contains(target) || target.dataset.nodeId === d.from) return;
        var index = ed.addEdge(d.from, target.dataset.nodeId, "on_success");
        ed.select({ kind: "edge", index: index }, true);
        return;
      }
      if (d.moved) ed.render();
      else ed.select({ kind: "node", id: d.node.id });
    }

    // keyboard: Delete removes, Enter or Space opens an edge, arrows move a node
    function onCanvasKey(ev) {
      var wrap = ev.target.closest(".wf-node");
      var g = ev.target.closest(".wf-edge");
      if (ev.key === "Delete" || ev.key === "Backspace") {
        if (wrap) ed.setSelected({ kind: "node", id: wrap.dataset.nodeId });
        else if (g) ed.setSelected({ kind: "edge", index: Number(g.dataset.index) });
        else return;
        ev.preventDefault();
        ed.removeSelected();
        canvas.focus();
        return;
      }
      if (g && (ev.key === "Enter" || ev.key === " ")) {
        ev.preventDefault();
        ed.select({ kind: "edge", index: Number(g.dataset.index) }, true);
        return;
      }
      var moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
      if (wrap && moves[ev.key]) {
        ev.preventDefault();
        var node = ed.nodeById(wrap.dataset.nodeId);
        var step = ev.shiftKey ? 50 : 10;
        node.position.x = Math.max(0, node.position.x + moves[ev.key][0] * step);
        node.position.y = Math.max(0, node.position.y + moves[ev.key][1] * step);
        ed.setSelected({ kind: "node", id: node.id });
        ed.render();
      }
    }

    function onCanvasClick(ev) {
      var g = ev.target.closest(".wf-edge");
      if (g) { ed.select({ kind: "edge", index: Number(g.dataset.index) }, true); return; }
      // Enter or Space on a focused node (a click without a pointer) selects it.
      var wrap = ev.target.closest(".wf-node");
      if (wrap && ev.detail === 0) ed.select({ kind: "node", id: wrap.dataset.nodeId });
    }

    canvas.addEventListener("pointerdown", onPointerDown);
    canvas.addEventListener("click", onCanvasClick);
    canvas.addEventListener("keydown", onCanvasKey);
  }

  window.CroniumWorkflowCanvas = { bind: bind };
})();
