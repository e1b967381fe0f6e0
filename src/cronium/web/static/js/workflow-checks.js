// What the API would refuse in a workflow graph, said while editing: keys, self edges,
// repeated edges and cycles. Nodes are {id, key}; edges refer to node ids.
(function () {
  "use strict";

  var KEY_RE = /^[A-Za-z0-9_.\- ]+$/;

  // A cycle's node ids in order (depth-first search with a stack of the current path), or null.
  function findCycle(nodes, edges) {
    var children = {};
    nodes.forEach(function (n) { children[n.id] = []; });
    edges.forEach(function (e) { if (children[e.from] && children[e.to] && e.from !== e.to) children[e.from].push(e.to); });
    var state = {};
    var stack = [];
    var found = null;
    function visit(id) {
      state[id] = 1;
      stack.push(id);
      for (var k = 0; k < children[id].length && !found; k++) {
        var next = children[id][k];
        if (state[next] === 1) { found = stack.slice(stack.indexOf(next)); return; }
        if (!state[next]) visit(next);
      }
      stack.pop();
      state[id] = 2;
    }
    nodes.forEach(function (n) { if (!state[n.id] && !found) visit(n.id); });
    return found;
  }

  function validate(nodes, edges, nodeById) {
    var label = window.CroniumGraph.edgeLabel;
    var issues = [];
    var badNodes = {};
    var badEdges = {};
    var seen = {};
    nodes.forEach(function (n) {
      if (!n.key) { issues.push("A node has no key."); badNodes[n.id] = true; return; }
      if (!KEY_RE.test(n.key)) { issues.push("Node key “" + n.key + "”: use letters, digits, _ . - and spaces only."); badNodes[n.id] = true; }
      if (seen[n.key]) {
        issues.push("Duplicate key “" + n.key + "”: two nodes have it; keys must be unique.");
        badNodes[n.id] = true;
        badNodes[seen[n.key]] = true;
      }
      seen[n.key] = n.id;
    });
    var pairs = {};
    edges.forEach(function (e, i) {
      var from = nodeById(e.from), to = nodeById(e.to);
      if (!from || !to) { issues.push("An edge refers to a removed node."); badEdges[i] = true; return; }
      if (e.from === e.to) { issues.push("Edge " + from.key + " → " + to.key + ": a node cannot follow itself (an edge to itself)."); badEdges[i] = true; }
      var pair = e.from + ">" + e.to + ">" + e.type + ">" + e.condition;
      if (pairs[pair]) { issues.push("Edge " + from.key + " → " + to.key + " (" + label(e) + ") is there twice."); badEdges[i] = true; }
      pairs[pair] = true;
    });
    var cycle = findCycle(nodes, edges);
    if (cycle) {
      var names = cycle.map(function (id) { return nodeById(id).key; });
      issues.push("Cycle: " + names.concat(names[0]).join(" → ") + ". A workflow must not loop back; remove one of these edges.");
      cycle.forEach(function (id, k) {
        var next = cycle[(k + 1) % cycle.length];
        edges.forEach(function (e, i) { if (e.from === id && e.to === next) badEdges[i] = true; });
      });
    }
    return { issues: issues, badNodes: badNodes, badEdges: badEdges };
  }

  window.CroniumWorkflowChecks = { validate: validate, findCycle: findCycle };
})();
