// Runs before the page paints: apply the saved theme (else the system's) to avoid a flash.
(function () {
  var saved = null;
  try { saved = localStorage.getItem("cronium-theme"); } catch (e) { /* private mode */ }
  var dark = saved ? saved === "dark" : window.matchMedia("(prefers-color-scheme: dark)").matches;
  document.documentElement.dataset.theme = dark ? "dark" : "light";
})();
