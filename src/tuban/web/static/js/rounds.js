// Rounds page: create a round from a patch file or a detection run (POST /api/rounds/import).
(function () {
  "use strict";
  var form = document.getElementById("round-import"), out = document.getElementById("round-import-result");
  var runs = document.getElementById("detection-runs");
  window.tubanApi.get("/api/detection-runs").then(function (list) {
    list.forEach(function (r) { var o = document.createElement("option"); o.value = r.name; o.textContent = r.name; runs.appendChild(o); });
  }).catch(function () { /* no runs offered */ });
  form.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var data = new FormData(form);
    if (!data.get("run")) data.delete("run");
    if (!(data.get("file") && data.get("file").size)) data.delete("file");
    data.set("analyse", form.elements.analyse.checked ? "true" : "false");
    var token = (document.cookie.split("; ").find(function (c) { return c.indexOf("tuban_csrf=") === 0; }) || "=").split("=")[1];
    out.textContent = "…";
    try {
      var res = await fetch("/api/rounds/import", { method: "POST", body: data, credentials: "same-origin",
        headers: { "Accept": "application/json", "X-CSRF-Token": decodeURIComponent(token) } });
      var body = await res.json();
      if (!res.ok) { out.textContent = res.status + " " + (body.title || "") + (body.hint ? " — " + body.hint : ""); return; }
      out.textContent = body.name + ": " + body.patches + (body.analysis ? " · " + JSON.stringify(body.analysis.rules) : "") +
        (body.analysis_error ? " · " + body.analysis_error : "");
      setTimeout(function () { location.reload(); }, 1200);
    } catch (e) { out.textContent = e.message; }
  });
})();
