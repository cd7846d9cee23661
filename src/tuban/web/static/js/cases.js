(function () {
  "use strict";
  document.querySelectorAll("form.advance").forEach(function (form) {
    form.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      var body = { to: form.elements.to.value, note: form.elements.note.value };
      if (form.elements.deadline.value) body.deadline = form.elements.deadline.value;
      try { await window.tubanApi.send("POST", "/api/cases/" + form.dataset.case + "/advance", body); location.reload(); }
      catch (e) { alert(tubanApi.describe(e)); }
    });
  });
})();
