'use strict';
// Pre-loads the Cronium SDK (NODE_OPTIONS=--require <root>/node/preload.js): defines the
// global `cronium`, so a script can `await cronium.input()` without require. Loading the
// SDK opens no socket and starts no timer, prints nothing and never throws: Node
// processes that do not use it (npm, tools) are unaffected.
try {
  if (typeof globalThis.cronium === 'undefined') {
    Object.defineProperty(globalThis, 'cronium', {
      value: require('./cronium.js'),
      writable: true,
      configurable: true,
      enumerable: false,
    });
  }
} catch (_) {
  // Never break a script's start-up.
}
