// The live run view: the workflow's graph with each node coloured by its status, refreshed
// from GET /api/v1/workflow-runs/{id} every second until the run has finished.
(function () {
  "use strict";

  function badge(status) {
    var span = document.createElement("span");
    span.className = "badge status-" + status;
    span.textContent = status;
    return span;
  }

  function seconds(ms) {
    if (ms === null || ms === undefined) return "—";
    if (ms < 1000) return ms + " ms";
    return (ms / 1000).toFixed(1) + " s";
  }

  function updateTable(node) {
    var row = document.querySelector('[data-node-row="' + CSS.escape(node.key) + '"]');
    if (!row) return;
    var status = row.querySelector('[data-cell="status"]');
    if (!status.querySelector(".status-" + node.status)) status.replaceChildren(badge(node.status));
    var exec = row.querySelector('[data-cell="execution"]');
    if (node.execution_id && !exec.querySelector("a")) {
      var a = document.createElement("a");
      a.href = "/executions/" + node.execution_id;
      a.textContent = "#" + node.execution_id;
      exec.replaceChildren(a);
    }
    row.querySelector('[data-cell="duration"]').textContent = seconds(node.duration_ms);
    row.querySelector('[data-cell="error"]').textContent = node.error || "";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var canvas = document.getElementById("wf-canvas");
    var holder = document.getElementById("wf-run");
    if (!canvas || !holder) return;
    var G = window.CroniumGraph;
    var data = G.fromApi(G.readJson("wf-graph-data") || {});
    var graph = G.create(canvas, { mode: "run" });
    graph.draw(data.nodes, data.edges);
    var byKey = {};
    data.nodes.forEach(function (n) { byKey[n.key] = n; });
    var runId = holder.dataset.runId;
    var failures = 0;
    var timer = null;

    function apply(run) {
      (run.nodes || []).forEach(function (nr) {
        var node = byKey[nr.key];
        if (node && (node.status !== nr.status || node.execution_id !== nr.execution_id)) {
          node.status = nr.status;
          node.execution_id = nr.execution_id;
          graph.paintNode(node);
        }
        updateTable(nr);
      });
      graph.drawEdges();
      var head = document.getElementById("wf-run-status");
      if (head.dataset.status !== run.status) {
        head.dataset.status = run.status;
        head.replaceChildren(badge(run.status));
      }
      var error = document.getElementById("wf-run-error");
      error.textContent = run.error || "";
      error.hidden = !run.error;
      var finished = !!run.finished_at;
      if (finished) {
        document.getElementById("wf-run-duration").textContent = seconds(run.duration_ms);
        var cancel = document.getElementById("wf-cancel");
        if (cancel) cancel.hidden = true;
        holder.dataset.finished = "true";
      }
      return finished;
    }

    async function poll() {
      var result = await window.Cronium.api("GET", "/api/v1/workflow-runs/" + runId);
      if (result.ok) {
        failures = 0;
        if (apply(result.data)) return;
      } else if (result.status === 404) {
        return;
      } else {
        failures++;
      }
      timer = setTimeout(poll, Math.min(1000 * (1 + failures), 10000));
    }

    if (holder.dataset.finished !== "true") timer = setTimeout(poll, 500);
    // After a cancel, look again at once.
    document.addEventListener("cronium:done", function () {
      if (holder.dataset.finished === "true") return;
      clearTimeout(timer);
      poll();
    });
  });
})();
