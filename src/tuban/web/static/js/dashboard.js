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
})();
