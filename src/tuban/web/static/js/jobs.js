// Rounds page: detection jobs (检测任务). Queue one (POST /api/detection-jobs) from two scenes of the server's
// imagery folder, or a true-colour review image of one scene (POST /api/imagery-jobs, 复核影像); follow their
// state and progress, cancel one. Strings come from the page's catalogue.
(function () {
  "use strict";
  var S = JSON.parse(document.getElementById("jobs-strings").textContent);
  var api = window.tubanApi;
  var form = document.getElementById("job-submit"), out = document.getElementById("job-submit-result");
  var imageForm = document.getElementById("imagery-job-submit"), imageOut = document.getElementById("imagery-job-result");
  var body = document.querySelector("#detection-jobs tbody");
  var timer = null;

  function t(key, vars) {
    var s = S[key] || key;
    Object.keys(vars || {}).forEach(function (k) { s = s.replace("{" + k + "}", vars[k]); });
    return s;
  }
  // the form's names (优先, 紧急) for its levels, the number for others set through the API
  function priority(p) { return S["jobs.priority." + p] || t("jobs.priority_n", { n: p }); }
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }
  function failed(where) {  // an API error, shown where the form says what happened
    return function (e) { where.textContent = api.describe(e); };
  }
  function local(iso) {  // the browser's own time zone (the server keeps UTC)
    if (!iso) return "";
    var d = new Date(iso), p = function (n) { return (n < 10 ? "0" : "") + n; };
    return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " + p(d.getHours()) + ":" + p(d.getMinutes());
  }
  function detail(job) {
    if (job.state === "done" && job.result && job.kind === "imagery") {
      return t("jobs.image_done", { w: job.result.width, h: job.result.height });
    }
    if (job.state === "done" && job.result) return job.result.patches + " " + t("jobs.patches");
    if (job.state === "failed") return job.error || "";
    if (job.state === "running") {
      var s = t("jobs.attempt", { n: job.attempts }) + (job.progress ? " · " + job.progress : "");
      return job.cancel_requested ? t("jobs.cancelling") + " · " + s : s;
    }
    return "";
  }
  function render(list) {
    body.textContent = "";
    if (!list.length) {
      var tr = document.createElement("tr");
      cell(tr, t("jobs.none")).colSpan = 8;
      body.appendChild(tr);
    }
    list.forEach(function (job) {
      var tr = document.createElement("tr");
      tr.dataset.job = job.id;
      tr.dataset.state = job.state;
      tr.dataset.kind = job.kind;
      cell(tr, job.id, "num");
      cell(tr, t("jobs.kind." + job.kind) + (job.priority ? " · " + priority(job.priority) : ""));
      cell(tr, job.output);
      cell(tr, t("jobs.state." + job.state), "state state-" + job.state);
      cell(tr, detail(job), "small");
      cell(tr, job.created_by);
      cell(tr, local(job.created_at));
      var td = cell(tr, "");
      if (job.state === "done" && job.kind !== "imagery" && document.getElementById("round-import")) {
        var use = document.createElement("button");
        use.type = "button";
        use.className = "use-run";
        use.textContent = t("jobs.use");
        use.addEventListener("click", function () { useRun(job); });
        td.appendChild(use);
      }
      if ((job.state === "queued" || job.state === "running") && !job.cancel_requested) {
        var b = document.createElement("button");
        b.type = "button";
        b.className = "cancel-job";
        b.textContent = t("jobs.cancel");
        b.addEventListener("click", function () {
          api.send("POST", "/api/detection-jobs/" + job.id + "/cancel").then(refresh, function (e) { out.textContent = e.message; });
        });
        td.appendChild(b);
      }
      body.appendChild(tr);
    });
    offerRuns(list);
    offerImages(list);
    var active = list.some(function (j) { return j.state === "queued" || j.state === "running"; });
    clearTimeout(timer);
    if (active) timer = setTimeout(refresh, 3000);
  }
  function offerRuns(list) {  // a job's output, once done, in the round form's list of detection runs
    var runs = document.getElementById("detection-runs");
    if (!runs) return;
    list.forEach(function (job) {
      if (job.state === "done" && job.kind !== "imagery") addOption(runs, { name: job.output, kind: "file" });
    });
  }
  function addOption(sel, e) {  // once: the listing and a done job may both offer a file
    if (Array.prototype.some.call(sel.options, function (o) { return o.value === e.name; })) return;
    var o = document.createElement("option");
    o.value = e.name;
    o.textContent = e.name + (e.kind === "folder" ? "/" : "");
    sel.appendChild(o);
  }
  function offerImages(list) {  // an imagery job's image, once done, is a scene too
    list.forEach(function (job) {
      if (job.kind !== "imagery" || job.state !== "done") return;
      document.querySelectorAll("select.imagery").forEach(function (sel) { addOption(sel, { name: job.output, kind: "file" }); });
    });
  }
  function useRun(job) {  // the round form, filled in with this job's output
    var roundForm = document.getElementById("round-import");
    document.getElementById("detection-runs").value = job.output;
    if (!roundForm.elements.name.value) roundForm.elements.name.value = job.output.replace(/\.gpkg$/, "");
    roundForm.scrollIntoView({ block: "center" });
    roundForm.elements.name.focus();
  }
  function refresh() {
    return api.get("/api/detection-jobs").then(render, function (e) { out.textContent = e.message; });
  }
  api.get("/api/imagery").then(function (list) {
    if (!list.length) out.textContent = t("jobs.no_imagery");
    document.querySelectorAll("#job-submit select.imagery").forEach(function (sel, i) {
      list.forEach(function (e) { addOption(sel, e); });
      if (i === 1 && list.length > 1) sel.selectedIndex = 1;  // a different default for the after date
    });
    list.forEach(function (e) { addOption(imageForm.elements.scene, e); });
  });
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var job = { output: form.elements.output.value, before: form.elements.before.value,
                after: form.elements.after.value, mmu_ha: parseFloat(form.elements.mmu_ha.value || "0.04"),
                priority: parseInt(form.elements.priority.value || "0", 10) };
    if (form.elements.baseline.value) job.baseline = form.elements.baseline.value;
    out.textContent = "…";
    api.send("POST", "/api/detection-jobs", job).then(function (created) {
      out.textContent = "#" + created.id + " " + created.output + " · " + t("jobs.state." + created.state);
      return refresh();
    }, failed(out));
  });
  imageForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    imageOut.textContent = "…";
    api.send("POST", "/api/imagery-jobs", { output: imageForm.elements.output.value, scene: imageForm.elements.scene.value,
                                            priority: parseInt(imageForm.elements.priority.value || "0", 10) })
      .then(function (created) {
        imageOut.textContent = "#" + created.id + " " + created.output + " · " + t("jobs.state." + created.state);
        return refresh();
      }, failed(imageOut));
  });
  refresh();
})();
