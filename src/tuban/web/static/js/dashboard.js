(function () {
  "use strict";
  document.querySelectorAll(".submit-task").forEach(function (btn) {
    btn.addEventListener("click", async function () {
      var meta = document.querySelector('meta[name="csrf-token"]').content;
      var res = await fetch("/api/tasks/" + btn.dataset.task + "/submit", { method: "POST", headers: { "X-CSRF-Token": meta } });
      var data = await res.json();
      if (res.ok) { location.reload(); } else { alert(data.title + (data.hint ? " (" + data.hint + ")" : "")); }
    });
  });
  // the round's review imagery (province staff): two image files of the server's imagery folder
  var form = document.getElementById("round-imagery");
  if (!form) return;
  var out = document.getElementById("round-imagery-result");
  window.tubanApi.get("/api/imagery").then(function (list) {
    form.querySelectorAll("select.imagery-file").forEach(function (sel, i) {
      list.filter(function (e) { return e.kind === "file"; }).forEach(function (e) {
        var o = document.createElement("option");
        o.value = e.name;
        o.textContent = e.name;
        sel.appendChild(o);
      });
      if (i === 1 && sel.options.length > 1) sel.selectedIndex = 1;
    });
  });
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var body = { before: form.elements.before.value, after: form.elements.after.value };
    window.tubanApi.send("PUT", "/api/rounds/" + form.dataset.round + "/imagery", body).then(function () {
      out.textContent = form.dataset.saved;
      document.getElementById("round-imagery-now").textContent = body.before + " · " + body.after;
    }, function (e) { out.textContent = window.tubanApi.describe(e); });
  });
})();
