// Account pages: repeated passwords, the settings test email, the users page's panels,
// role changes and invitation results, and the API token shown once after creating it.
(function () {
  "use strict";
  var C = window.Cronium;

  function fieldError(field, message) {
    var err = new Error(message);
    err.details = [{ field: field, message: message }];
    return err;
  }

  // ---- reset / accept: the password typed twice ------------------------------------------
  document.querySelectorAll("form[data-password-form]").forEach(function (form) {
    form.croniumBody = function () {
      var password = form.querySelector('[name="password"]').value;
      var repeat = form.querySelector('[name="password_repeat"]').value;
      if (password && repeat !== password) throw fieldError("password_repeat", "the two passwords differ");
      return C.formBody(form);
    };
  });

  // ---- forgot password: the same answer for every address --------------------------------
  var forgot = document.getElementById("forgot-form");
  if (forgot) {
    forgot.addEventListener("cronium:done", function (ev) {
      var box = document.querySelector("[data-sent]");
      box.textContent = ev.detail.message + " Check your inbox (and the spam folder).";
      box.hidden = false;
      forgot.hidden = true;
    });
  }

  // ---- settings ----------------------------------------------------------------------------
  var settings = document.getElementById("settings-form");
  if (settings) {
    settings.addEventListener("cronium:done", function (ev) {
      var data = ev.detail;
      var password = settings.querySelector('[name="smtp.password"]');
      password.value = "";
      password.placeholder = data.smtp.password_set ? "•••••• stored" : "";
      settings.querySelector('[name="smtp.clear_password"]').checked = false;
      settings.querySelector("[data-clear-password]").hidden = !data.smtp.password_set;
      var baseHelp = settings.querySelector('[name="base_url"]').parentNode.querySelector(".help");
      if (baseHelp) baseHelp.textContent = data.base_url
        ? "Links in emails start with this address."
        : "Not set: links use the address each request arrives at.";
      settings.querySelector("[data-email-state]").textContent =
        data.email_configured ? "Email is set up." : "Email is not set up yet.";
    });
    var testButton = settings.querySelector("[data-test-email]");
    var result = settings.querySelector("[data-test-email-result]");
    testButton.addEventListener("click", async function () {
      testButton.disabled = true;
      result.hidden = true;
      var answer = await C.api("POST", "/api/v1/settings/test-email");
      testButton.disabled = false;
      var data = answer.data || {};
      result.className = "test-email-result " + (answer.ok && data.ok ? "notice ok" : "form-error");
      if (answer.ok && data.ok) result.textContent = "Sent a test message to " + data.to + ".";
      else if (answer.ok) result.textContent = "The test email failed: " + data.error;
      else result.textContent = (data.error && data.error.message) || "HTTP " + answer.status;
      result.hidden = false;
    });
  }

  // ---- users: panels, roles, invitations ---------------------------------------------------
  document.querySelectorAll("[data-open-panel]").forEach(function (button) {
    button.addEventListener("click", function () {
      var panel = document.getElementById(button.dataset.openPanel);
      panel.hidden = !panel.hidden;
      button.setAttribute("aria-expanded", String(!panel.hidden));
      if (!panel.hidden) panel.querySelector("input").focus();
    });
  });

  document.addEventListener("change", async function (ev) {
    var select = ev.target.closest("select[data-role-for]");
    if (!select) return;
    var id = select.dataset.roleFor;
    var slot = document.querySelector('[data-role-error="' + id + '"]');
    slot.textContent = "";
    select.removeAttribute("aria-invalid");
    select.disabled = true;
    var answer = await C.api("PATCH", "/api/v1/users/" + id, { role: select.value });
    select.disabled = false;
    if (answer.ok) {
      select.dataset.current = select.value;
      C.toast("Role changed to " + select.value, "ok");
    } else {
      slot.textContent = (answer.data && answer.data.error && answer.data.error.message) || "HTTP " + answer.status;
      select.setAttribute("aria-invalid", "true");
      select.value = select.dataset.current;
    }
  });

  var invite = document.getElementById("invite-form");
  if (invite) {
    invite.addEventListener("cronium:done", function (ev) {
      var data = ev.detail;
      var box = document.querySelector("[data-invite-result]");
      if (data.email_sent) {
        C.toast("Invitation sent to " + data.email, "ok");
        window.location.reload();
        return;
      }
      box.querySelector("[data-invite-error]").textContent =
        "The invitation exists but its email was not sent: " + data.email_error + " Pass the link on yourself.";
      box.querySelector("[data-invite-link]").value = data.url;
      box.hidden = false;
      invite.reset();
    });
  }

  // ---- tokens: shown once ------------------------------------------------------------------
  function refreshTokens() {
    if (window.htmx) window.htmx.ajax("GET", "/tokens", { target: "#tokens-table", swap: "innerHTML" });
  }
  var tokenForm = document.getElementById("token-form");
  if (tokenForm) {
    tokenForm.addEventListener("cronium:done", function (ev) {
      var box = document.querySelector("[data-new-token]");
      box.querySelector("[data-new-token-value]").value = ev.detail.token;
      box.querySelector("[data-new-token-name]").textContent = "(" + ev.detail.name + ")";
      box.hidden = false;
      box.querySelector("[data-new-token-value]").select();
      tokenForm.reset();
      refreshTokens();
    });
    document.addEventListener("cronium:done", function (ev) {
      if (ev.target.closest && ev.target.closest("[data-token-revoke]")) {
        C.toast("Token revoked", "ok");
        refreshTokens();
      }
    });
  }
})();
