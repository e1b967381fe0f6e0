// xterm.js for the server terminal: window.CroniumTerminal.create(element) returns
// { term, fit } with the fit addon loaded; the page wires it to its WebSocket.
import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";

function create(element, options = {}) {
  const term = new Terminal({ cursorBlink: true, convertEol: false, fontSize: 14, ...options });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(element);
  fit.fit();
  return { term, fit };
}

window.CroniumTerminal = { create };
