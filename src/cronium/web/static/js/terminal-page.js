// The server terminal: xterm.js wired to WS /api/v1/servers/{id}/terminal. Keystrokes go
// out as {"type":"input"} frames, size changes as {"type":"resize"}; the shell's output
// comes back as binary frames, and a last JSON frame says how the session ended.
(function () {
  "use strict";
  var box = document.getElementById("terminal");
  if (!box || !window.CroniumTerminal) return;
  var stateEl = document.querySelector("[data-terminal-state]");
  var reconnect = document.querySelector("[data-terminal-reconnect]");
  var made = window.CroniumTerminal.create(box, {
    scrollback: 5000,
    theme: { background: "#0f1115", foreground: "#d8dde5", cursor: "#f0a500" },
  });
  var term = made.term;
  var fit = made.fit;
  var socket = null;
  var ended = false;

  function setState(text, kind) {
    if (!stateEl) return;
    stateEl.textContent = text;
    stateEl.className = "badge" + (kind ? " status-" + kind : "");
  }

  function send(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
  }

  function refit() {
    try { fit.fit(); } catch (e) { /* not laid out yet */ }
  }

  function describeEnd(frame) {
    if (frame.reason === "idle") return "closed after a long time without input";
    if (frame.reason === "connection_lost") return "the connection to the server was lost";
    return "shell exited" + (frame.status === null || frame.status === undefined ? "" : " with status " + frame.status);
  }

  function finish(text, kind) {
    ended = true;
    setState(text, kind);
    if (reconnect) reconnect.hidden = false;
  }

  function connect() {
    ended = false;
    if (reconnect) reconnect.hidden = true;
    refit();
    setState("connecting…", "pending");
    var url = new URL(box.dataset.terminalWs, window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("cols", String(term.cols));
    url.searchParams.set("rows", String(term.rows));
    socket = new WebSocket(url.toString());
    socket.binaryType = "arraybuffer";
    var opened = false;
    socket.addEventListener("open", function () {
      opened = true;
      setState("connected", "online");
      term.focus();
    });
    socket.addEventListener("message", function (ev) {
      if (typeof ev.data !== "string") {
        term.write(new Uint8Array(ev.data));
        return;
      }
      var frame;
      try { frame = JSON.parse(ev.data); } catch (e) { return; }
      if (frame.type === "exit") {
        term.write("\r\n\x1b[2m[" + describeEnd(frame) + "]\x1b[0m\r\n");
        finish(frame.reason === "exit" ? "ended (" + frame.status + ")" : "closed", frame.reason === "exit" ? "" : "offline");
      } else if (frame.type === "error") {
        term.write("\r\n\x1b[31m" + frame.message + "\x1b[0m\r\n");
        finish(frame.code || "error", "error");
      }
    });
    socket.addEventListener("close", function (ev) {
      if (ended) return;
      if (!opened) {
        term.write("\r\n\x1b[31mThe terminal was refused" + (ev.reason ? ": " + ev.reason : "") + ".\x1b[0m\r\n");
        finish("refused", "error");
      } else {
        term.write("\r\n\x1b[2m[disconnected]\x1b[0m\r\n");
        finish("disconnected", "offline");
      }
    });
  }

  term.onData(function (data) { send({ type: "input", data: data }); });
  term.onResize(function (size) { send({ type: "resize", cols: size.cols, rows: size.rows }); });
  if (window.ResizeObserver) new ResizeObserver(refit).observe(box);
  else window.addEventListener("resize", refit);
  if (reconnect) reconnect.addEventListener("click", function () { term.reset(); connect(); });
  window.addEventListener("beforeunload", function () { if (socket) socket.close(); });
  connect();
})();
