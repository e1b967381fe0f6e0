// Bundles the front-end packages into ../static/vendor (committed: Cronium serves them
// itself and runs with Python alone). Run `npm ci && npm run build` after changing them.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";

const out = new URL("../static/vendor/", import.meta.url).pathname;
mkdirSync(out, { recursive: true });

const common = { bundle: true, minify: true, format: "iife", target: "es2020", legalComments: "none" };
await build({ ...common, entryPoints: ["src/editor.js"], outfile: `${out}editor.js` });
await build({ ...common, entryPoints: ["src/terminal.js"], outfile: `${out}terminal.js` });
copyFileSync("node_modules/htmx.org/dist/htmx.min.js", `${out}htmx.min.js`);
copyFileSync("node_modules/@xterm/xterm/css/xterm.css", `${out}xterm.css`);
// The interactive API docs at /api/docs, served offline.
copyFileSync("node_modules/swagger-ui-dist/swagger-ui-bundle.js", `${out}swagger-ui-bundle.js`);
copyFileSync("node_modules/swagger-ui-dist/swagger-ui.css", `${out}swagger-ui.css`);
copyFileSync("node_modules/swagger-ui-dist/favicon-32x32.png", `${out}favicon.png`);
console.log(`bundled into ${out}`);
