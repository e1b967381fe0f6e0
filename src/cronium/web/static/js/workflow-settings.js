// The editor's settings column: only the chosen schedule kind's fields are shown and sent,
// and a one-off time typed in local time is sent as an ISO instant.
(function () {
  "use strict";

  function syncSchedule(form) {
    var kind = form.querySelector("#wf-schedule-kind").value;
    form.querySelectorAll("[data-schedule]").forEach(function (box) {
      var on = box.dataset.schedule === kind;
      box.hidden = !on;
      if (on) box.removeAttribute("data-skip"); else box.setAttribute("data-skip", "");
    });
  }

  function localInput(iso) {
    var d = new Date(iso);
    if (isNaN(d)) return "";
    var pad = function (n) { return String(n).padStart(2, "0"); };
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }

  function bind(form) {
    form.querySelector("#wf-schedule-kind").addEventListener("change", function () { syncSchedule(form); });
    var at = form.querySelector("#wf-schedule-at");
    if (at && at.dataset.iso) at.value = localInput(at.dataset.iso);
    syncSchedule(form);
  }

  // The form's fields as the API's JSON (without the graph).
  function body(form) {
    var data = window.Cronium.formBody(form);
    if (data.schedule && data.schedule.kind === "once" && data.schedule.at) {
      var at = new Date(data.schedule.at);
      if (!isNaN(at)) data.schedule.at = at.toISOString();
    }
    return data;
  }

  window.CroniumWorkflowSettings = { bind: bind, body: body };
})();
