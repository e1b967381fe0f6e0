// The variable form: the value as text or JSON, and a stored secret's empty value meaning
// "keep it" (secret values are write-only: the page never has them).
(function () {
  "use strict";
  var form = document.getElementById("variable-form");
  if (!form) return;
  var edit = form.dataset.mode === "edit";
  var storedSecret = form.dataset.storedSecret === "true";
  function input(name) { return form.querySelector('[name="' + name + '"]'); }

  function fieldError(field, message) {
    var err = new Error(message);
    err.details = [{ field: field, message: message }];
    return err;
  }

  form.croniumBody = function () {
    var body = {};
    var key = input("key");
    if (!edit || key.value !== key.defaultValue) body.key = key.value.trim();
    body.secret = input("secret").checked;
    body.description = input("description").value;
    var raw = input("value").value;
    var kind = form.querySelector("[data-value-kind]").value;
    if (edit && storedSecret && raw === "") return body;  // unchanged secret
    if (kind === "json") {
      try { body.value = JSON.parse(raw); }
      catch (e) { throw fieldError("value", "not valid JSON: " + e.message); }
    } else {
      body.value = raw;
    }
    return body;
  };
})();
