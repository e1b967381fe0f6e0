// The run page: live log over the WebSocket stream (resumed with ?after=<last seq> when the
// connection drops, so no line is missing or shown twice), per-target tabs, auto-scroll that
// pauses while the reader looks further up, and the run's facts reloaded on each new status.
(function () {
  "use strict";

  var root = document.getElementById("execution");
  if (!root) return;
  var id = root.dataset.executionId;
  var logBox = root.querySelector("[data-log]");
  var stateEl = root.querySelector("[data-log-state]");
  var followBtn = root.querySelector("[data-follow]");
  var tabsEl = root.querySelector("[data-log-tabs]");

  var lastSeq = 0;
  var ended = false;
  var follow = true;
  var lastTop = 0;
  var filter = "";
  var targets = [];
  var pending = [];
  var flushScheduled = false;
  var retryDelay = 500;
  var lineCount = 0;
  // A browser slows down with hundreds of thousands of nodes: keep the newest lines only.
  var MAX_LINES = parseInt(root.dataset.maxLines, 10) || 20000;
  var trimmed = 0;

  try { targets = JSON.parse(root.dataset.targets || "[]"); } catch (e) { targets = []; }

  function setState(text) { if (stateEl) stateEl.textContent = text; }

  // ---- status badge and facts ------------------------------------------------------------
  function setBadge(status) {
    root.querySelectorAll("[data-run-status] .badge").forEach(function (badge) {
      badge.className = "badge status-" + status;
      badge.textContent = status;
    });
  }

  var summaryBusy = false;
  var summaryAgain = false;
  async function refreshSummary() {
    if (summaryBusy) { summaryAgain = true; return; }
    summaryBusy = true;
    try {
      var response = await fetch("/executions/" + id + "/summary", {
        credentials: "same-origin", headers: { "HX-Request": "true" },
      });
      if (!response.ok) return;
      var doc = new DOMParser().parseFromString(await response.text(), "text/html");
      doc.querySelectorAll("[data-region]").forEach(function (fresh) {
        var current = root.querySelector('[data-region="' + fresh.dataset.region + '"]');
        if (current) current.replaceWith(document.importNode(fresh, true));
      });
    } catch (e) {
      // The stream keeps the badge current; the facts catch up on the next status.
    } finally {
      summaryBusy = false;
      if (summaryAgain) { summaryAgain = false; refreshSummary(); }
    }
  }

  // ---- tabs --------------------------------------------------------------------------------
  function addTarget(target) {
    if (targets.indexOf(target) !== -1) return;
    targets.push(target);
    var tab = document.createElement("button");
    tab.type = "button";
    tab.setAttribute("role", "tab");
    tab.setAttribute("aria-selected", "false");
    tab.dataset.tab = target;
    tab.textContent = target;
    tabsEl.appendChild(tab);
    if (targets.length > 1) { tabsEl.hidden = false; root.classList.add("multi-target"); }
  }

  function selectTab(target) {
    filter = target;
    tabsEl.querySelectorAll("[role=tab]").forEach(function (tab) {
      tab.setAttribute("aria-selected", String(tab.dataset.tab === target));
    });
    logBox.querySelectorAll(".line:not([data-trimmed])").forEach(function (line) {
      line.hidden = target !== "" && line.dataset.target !== target;
    });
    if (follow) scrollToEnd();
  }

  if (tabsEl) {
    tabsEl.addEventListener("click", function (ev) {
      var tab = ev.target.closest("[role=tab]");
      if (tab) selectTab(tab.dataset.tab);
    });
  }
  if (targets.length > 1) root.classList.add("multi-target");

  // ---- the log -------------------------------------------------------------------------------
  function renderLine(msg) {
    var line = document.createElement("div");
    line.className = "line " + msg.stream;
    line.dataset.seq = msg.seq;
    line.dataset.target = msg.target;
    if (filter !== "" && msg.target !== filter) line.hidden = true;
    var seq = document.createElement("span");
    seq.className = "seq";
    seq.textContent = msg.seq;
    var target = document.createElement("span");
    target.className = "target";
    target.textContent = msg.target;
    var text = document.createElement("span");
    text.className = "text";
    text.textContent = msg.line;
    if (msg.ts) line.title = msg.ts;
    line.append(seq, target, text);
    return line;
  }

  function flush() {
    flushScheduled = false;
    if (!pending.length) return;
    var fragment = document.createDocumentFragment();
    pending.forEach(function (msg) { fragment.appendChild(renderLine(msg)); });
    lineCount += pending.length;
    pending = [];
    logBox.appendChild(fragment);
    trim();
    if (follow) scrollToEnd();
  }

  function trim() {
    if (lineCount - trimmed <= MAX_LINES) return;
    var lines = logBox.querySelectorAll(".line:not([data-trimmed])");
    var extra = lines.length - MAX_LINES;
    if (extra <= 0) return;
    for (var i = 0; i < extra; i++) lines[i].remove();
    trimmed += extra;
    var note = logBox.querySelector("[data-trimmed]");
    if (!note) {
      note = document.createElement("div");
      note.className = "line system trimmed";
      note.dataset.trimmed = "";
      logBox.prepend(note);
    }
    note.textContent = "";
    var text = document.createElement("span");
    text.className = "text";
    text.append(trimmed + " earlier lines are not shown here; the full log is at ");
    var link = document.createElement("a");
    link.href = "/api/v1/executions/" + id + "/logs?limit=10000";
    link.textContent = "the logs API";
    text.append(link, ".");
    note.append(text);
  }

  function onLog(msg) {
    if (msg.seq <= lastSeq) return;  // already shown (a resend after a reconnect)
    lastSeq = msg.seq;
    addTarget(msg.target);
    pending.push(msg);
    if (!flushScheduled) { flushScheduled = true; requestAnimationFrame(flush); }
  }

  // ---- following the newest line -------------------------------------------------------------
  function scrollToEnd() {
    logBox.scrollTop = logBox.scrollHeight;
    lastTop = logBox.scrollTop;
  }

  function setFollow(on) {
    follow = on;
    followBtn.setAttribute("aria-pressed", String(on));
    followBtn.textContent = on ? "Following" : "Follow";
    followBtn.classList.toggle("primary", !on);
    if (on) scrollToEnd();
  }

  logBox.addEventListener("scroll", function () {
    var top = logBox.scrollTop;
    var atEnd = logBox.scrollHeight - top - logBox.clientHeight < 4;
    // Only a move up is the reader's doing: appending lines never lowers scrollTop.
    if (top < lastTop - 1 && !atEnd && follow) setFollow(false);
    else if (atEnd && !follow) setFollow(true);
    lastTop = top;
  });
  followBtn.addEventListener("click", function () { setFollow(!follow); });

  // ---- the stream ------------------------------------------------------------------------------
  function finish(status) {
    ended = true;
    flush();
    setBadge(status);
    root.dataset.finished = "true";
    setState(status === "deleted" ? "This run was deleted." : lineCount + " lines · finished");
    refreshSummary();
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var url = scheme + location.host + "/api/v1/executions/" + id + "/stream?after=" + lastSeq;
    var ws = new WebSocket(url);
    var refused = false;
    ws.addEventListener("open", function () {
      retryDelay = 500;
      setState(ended ? "" : "Live");
    });
    ws.addEventListener("message", function (ev) {
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (msg.type === "log") onLog(msg);
      else if (msg.type === "status") {
        flush();
        setBadge(msg.status);
        // The first message repeats the status the page was rendered with.
        var facts = root.querySelector('[data-region="facts"]');
        if (!facts || facts.dataset.status !== msg.status) refreshSummary();
      } else if (msg.type === "end") finish(msg.status);
    });
    ws.addEventListener("close", function (ev) {
      if (ended) return;
      if (ev.code === 1008) {
        refused = true;
        setState("Live log refused: " + (ev.reason || "not allowed"));
        return;
      }
      if (!refused) {
        setState("Connection lost; reconnecting…");
        setTimeout(connect, retryDelay);
        retryDelay = Math.min(retryDelay * 2, 5000);
      }
    });
  }

  // ---- phases still going: count them up ------------------------------------------------------
  function elapsed(seconds) {
    if (seconds < 60) return Math.floor(seconds) + " s so far";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min " + Math.floor(seconds % 60) + " s so far";
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min so far";
  }

  function tick() {
    root.querySelectorAll("[data-since]").forEach(function (el) {
      var since = Date.parse(el.dataset.since);
      if (!Number.isNaN(since)) el.textContent = elapsed(Math.max(0, (Date.now() - since) / 1000));
    });
  }
  tick();
  setInterval(tick, 1000);

  root.addEventListener("cronium:done", function () { refreshSummary(); });
  connect();
})();
