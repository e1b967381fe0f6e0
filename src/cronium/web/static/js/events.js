// Events list: row selection and bulk pause/activate/delete through the REST API (one call
// per event, so each is authorised and validated like any other), then the table reloads.
(function () {
  "use strict";

  function boxes() { return Array.prototype.slice.call(document.querySelectorAll("[data-select]")); }
  function selected() { return boxes().filter(function (b) { return b.checked; }).map(function (b) { return b.value; }); }

  function updateBar() {
    var bar = document.querySelector("[data-bulk]");
    if (!bar) return;
    var ids = selected();
    bar.hidden = ids.length === 0;
    bar.querySelector("[data-bulk-count]").textContent = ids.length + " selected";
    var all = document.querySelector("[data-select-all]");
    if (all) {
      all.checked = ids.length > 0 && ids.length === boxes().length;
      all.indeterminate = ids.length > 0 && ids.length < boxes().length;
    }
  }

  document.addEventListener("change", function (ev) {
    if (ev.target.matches("[data-select-all]")) {
      boxes().forEach(function (b) { b.checked = ev.target.checked; });
    }
    if (ev.target.matches("[data-select], [data-select-all]")) updateBar();
  });
  document.addEventListener("htmx:afterSettle", updateBar);

  function reloadTable() {
    var url = location.pathname + location.search;
    if (window.htmx) window.htmx.ajax("GET", url, { target: "#events-table" });
    else location.reload();
  }

  document.addEventListener("click", async function (ev) {
    var button = ev.target.closest("[data-bulk-action]");
    if (!button) return;
    var action = button.dataset.bulkAction;
    var ids = selected();
    if (!ids.length) return;
    var C = window.Cronium;
    if (action === "delete" && !(await C.confirm("Delete " + ids.length + " event" + (ids.length === 1 ? "" : "s") + " and their run history?", "Delete events"))) return;
    button.disabled = true;
    var failed = [];
    for (var i = 0; i < ids.length; i++) {
      var result = action === "delete"
        ? await C.api("DELETE", "/api/v1/events/" + ids[i])
        : await C.api("POST", "/api/v1/events/" + ids[i] + "/" + action);
      if (!result.ok) failed.push("#" + ids[i] + ": " + ((result.data && result.data.error && result.data.error.message) || "HTTP " + result.status));
    }
    button.disabled = false;
    var done = ids.length - failed.length;
    var verb = { pause: "Paused", activate: "Activated", "delete": "Deleted" }[action];
    if (done) C.toast(verb + " " + done + " event" + (done === 1 ? "" : "s"), "ok");
    if (failed.length) C.toast(failed.join("; "), "error");
    reloadTable();
  });
})();
