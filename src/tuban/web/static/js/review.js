// Office review page: patch list (filters, search, j/k), before/after maps with swipe, side panel.
(function () {
  "use strict";
  var boot = JSON.parse(document.getElementById("boot").textContent);
  var M = boot.messages, api = window.tubanApi, roundId = boot.round.id;
  var state = { offset: 0, limit: 50, total: 0, items: [], index: -1, patch: null, maps: [], markers: [] };
  var $ = function (id) { return document.getElementById(id); };
  var byd = {}; boot.codelists.BYD.forEach(function (c) { byd[c[0]] = c[1]; });
  var reasons = {}; boot.codelists.REJECT_REASON.forEach(function (c) { reasons[c[0]] = c[1]; });
  function t(k) { return M[k] || k; }
  var unit = localStorage.getItem("tuban.unit") === "mu" ? "mu" : "ha";
  function fmtArea(ha) {
    if (ha == null) return "";
    var v = unit === "mu" ? ha * 15 : ha;  // 1 ha = 15 亩
    return Number(v).toLocaleString(boot.lang === "en" ? "en" : "zh-CN", { maximumFractionDigits: unit === "mu" ? 1 : 2 }) + " " + t("unit." + unit);
  }
  function fmtTime(s) { if (!s) return ""; var d = new Date(s); return d.toLocaleString(boot.lang === "en" ? "en" : "zh-CN", { hour12: false }); }
  function text(el, v) { el.textContent = v == null ? "" : String(v); }

  // ---- list ---------------------------------------------------------------------------
  async function loadList(keepIndex) {
    var p = new URLSearchParams({ offset: state.offset, limit: state.limit, sort: $("f-sort").value });
    if ($("search").value.trim()) p.set("q", $("search").value.trim());
    if ($("f-state").value) p.set("state", $("f-state").value);
    if ($("f-byd").value) p.set("byd", $("f-byd").value);
    var data = await api.get("/api/rounds/" + roundId + "/patches?" + p.toString());
    state.items = data.items; state.total = data.total;
    var ol = $("patch-list"); ol.textContent = "";
    data.items.forEach(function (it, i) {
      var li = document.createElement("li"); li.dataset.id = it.id; li.className = "patch-item";
      var a = document.createElement("b"); text(a, it.qdnm); li.appendChild(a);
      var s = document.createElement("span"); s.className = "badge st-" + it.state; text(s, t("state." + it.state)); li.appendChild(s);
      var small = document.createElement("small"); text(small, (it.byd ? byd[it.byd] || it.byd : "") + " · " + fmtArea(it.qarea)); li.appendChild(small);
      li.addEventListener("click", function () { select(i); });
      ol.appendChild(li);
    });
    text($("count"), data.total);
    text($("page"), data.total ? (state.offset + 1) + "–" + (state.offset + data.items.length) + " / " + data.total : "0");
    if (!keepIndex) { state.index = -1; }
    highlight();
  }
  function highlight() {
    document.querySelectorAll(".patch-item").forEach(function (li, i) { li.classList.toggle("active", i === state.index); });
    var act = document.querySelector(".patch-item.active"); if (act) act.scrollIntoView({ block: "nearest" });
  }
  async function select(i) {
    if (i < 0) { if (state.offset > 0) { state.offset = Math.max(0, state.offset - state.limit); await loadList(); i = state.items.length - 1; } else return; }
    if (i >= state.items.length) { if (state.offset + state.limit < state.total) { state.offset += state.limit; await loadList(); i = 0; } else return; }
    state.index = i; highlight(); await openPatch(state.items[i].id);
  }

  // ---- panel --------------------------------------------------------------------------
  function flash(msg) { var f = $("flash"); text(f, msg); f.hidden = false; $("err").hidden = true; setTimeout(function () { f.hidden = true; }, 2500); }
  function showError(e) {
    if (e.status === 409 && e.problem && e.problem.current) {
      $("conflict").hidden = false;
      text($("conflict-yours"), JSON.stringify(e.problem.submitted, null, 1));
      text($("conflict-current"), JSON.stringify(e.problem.current, null, 1));
    }
    var el = $("err"); text(el, tubanApi.describe(e)); el.hidden = false;
  }
  function render(p) {
    state.patch = p;
    $("panel-empty").hidden = true; $("panel-body").hidden = false; $("conflict").hidden = true; $("err").hidden = true;
    var f = p.fields;
    text($("p-title"), f.qdnm + (f.address ? " · " + f.address : ""));
    text($("p-state"), t("state." + f.state)); $("p-state").className = "badge st-" + f.state;
    text($("p-area"), fmtArea(f.qarea)); text($("p-version"), f.version);
    var s = p.suspected;
    text($("p-suspected"), s ? (byd[s.byd] || s.byd) + (s.rule_id ? " [" + s.rule_id + "]" : "") : (f.byd ? byd[f.byd] || f.byd : "—"));
    var ex = s ? ((boot.lang === "en" ? s.explanation_en : s.explanation_zh) || "") : "";
    text($("p-explanation"), ex || "—");
    var hasNumbers = !!(s && s.numbers && Object.keys(s.numbers).length);
    $("p-numbers-box").hidden = !hasNumbers;
    text($("p-numbers"), hasNumbers ? JSON.stringify(s.numbers, null, 1) : "");
    text($("p-confirmed"), p.confirmed ? (byd[p.confirmed.byd] || p.confirmed.byd) + " · " + p.confirmed.actor + " · " + fmtTime(p.confirmed.at) : "—");
    text($("p-case"), p.case ? t("review.case") + " #" + p.case.id + " · " + t("case." + p.case.state) : "");
    $("d-byd").value = f.byd || "";
    var form = $("fields-form");
    ["QTYPE", "QDCS", "QDTYPE", "SEROSION", "ISFOCUS", "ADDRESS", "PROBLEM", "PROPOSAL", "MEMO"].forEach(function (n) {
      form.elements[n].value = f[n.toLowerCase()] || "";
      form.elements[n].disabled = !p.can_edit;
    });
    text($("p-project"), f.prnm ? f.prnm + " (" + f.prid + ")" : "—");
    $("province-box").hidden = !(boot.can["round.accept"] && (f.state === "reported" || f.state === "rejected"));
    loadNearby(p);
    var ul = $("comments"); ul.textContent = "";
    p.comments.forEach(function (c) { var li = document.createElement("li"); text(li, c.user + " · " + fmtTime(c.at) + ": " + c.body); ul.appendChild(li); });
  }
  async function loadNearby(p) {
    var ul = $("nearby"); ul.textContent = "";
    if (!p.bbox || !p.can_edit) return;
    var d = 0.01, b = [p.bbox[0] - d, p.bbox[1] - d, p.bbox[2] + d, p.bbox[3] + d].map(function (x) { return x.toFixed(6); }).join(",");
    try {
      var fc = await api.get("/api/rounds/" + roundId + "/scopes?bbox=" + b);
      var seen = {};
      fc.features.forEach(function (f) {
        var pr = f.properties; if (seen[pr.project_id]) return; seen[pr.project_id] = true;
        var li = document.createElement("li"); var btn = document.createElement("button");
        text(btn, t("review.link")); btn.className = "link-project";
        btn.addEventListener("click", function () { act("PUT", "/project", { based_on_version: v(), project_id: pr.project_id }); });
        li.appendChild(btn); li.appendChild(document.createTextNode(" " + pr.name + (pr.approved ? "" : " (未批复)")));
        ul.appendChild(li);
      });
    } catch (e) { /* the list stays empty */ }
  }
  async function loadHistory(id) {
    var rows = await api.get("/api/patches/" + id + "/history");
    var ol = $("history"); ol.textContent = "";
    rows.slice().reverse().forEach(function (a) {
      var li = document.createElement("li"); li.className = "history-item";
      var after = a.after || {};
      var what = after.byd ? " → " + (byd[after.byd] || after.byd) : after.reason ? " → " + (reasons[after.reason] || after.reason) : after.state ? " → " + t("state." + after.state) : "";
      text(li, fmtTime(a.at) + " · " + a.actor + " · " + a.action + what + (after.note ? " · " + after.note : ""));
      ol.appendChild(li);
    });
  }
  async function openPatch(id) {
    try {
      var p = await api.get("/api/patches/" + id);
      render(p); history.replaceState(null, "", "#patch=" + id);
      await loadHistory(id); focusMap(p);
    } catch (e) { showError(e); }
  }
  async function act(method, path, body, msg) {
    if (!state.patch) return;
    try {
      var p = await api.send(method, "/api/patches/" + state.patch.id + path, body);
      if (p && p.fields) { render(p); } else { p = await api.get("/api/patches/" + state.patch.id); render(p); }
      await loadHistory(state.patch.id); flash(msg || t("review.saved"));
      var li = document.querySelector('.patch-item[data-id="' + state.patch.id + '"] .badge');
      if (li) { text(li, t("state." + p.fields.state)); li.className = "badge st-" + p.fields.state; }
      refreshFeatures();
    } catch (e) { showError(e); }
  }
  function v() { return state.patch.fields.version; }
  $("btn-review").addEventListener("click", function () { act("POST", "/review", { based_on_version: v(), byd: $("d-byd").value || null, note: $("d-note").value }); });
  $("btn-determine").addEventListener("click", function () { act("POST", "/determine", { based_on_version: v(), byd: $("d-byd").value, note: $("d-note").value }); });
  $("btn-reject").addEventListener("click", function () { act("POST", "/reject", { based_on_version: v(), reason: $("r-reason").value, note: $("r-note").value }); });
  $("btn-accept").addEventListener("click", function () { act("POST", "/accept", { comment: $("pv-comment").value }); });
  $("btn-return").addEventListener("click", function () { act("POST", "/return", { comment: $("pv-comment").value }); });
  $("unit").value = unit;
  $("unit").addEventListener("change", function (ev) {
    unit = ev.target.value; localStorage.setItem("tuban.unit", unit); loadList(true);
    if (state.patch) text($("p-area"), fmtArea(state.patch.fields.qarea));
  });
  $("btn-unlink").addEventListener("click", function () { act("PUT", "/project", { based_on_version: v(), project_id: null }); });
  $("btn-comment").addEventListener("click", async function () {
    if (!state.patch || !$("c-body").value.trim()) return;
    try { await api.send("POST", "/api/patches/" + state.patch.id + "/comments", { body: $("c-body").value }); $("c-body").value = ""; await openPatch(state.patch.id); flash(t("review.saved")); } catch (e) { showError(e); }
  });
  $("fields-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var fields = {};
    Array.prototype.forEach.call(ev.target.elements, function (el) { if (el.name) fields[el.name] = el.value || null; });
    act("PATCH", "", { based_on_version: v(), fields: fields });
  });

  // ---- keyboard, filters, paging --------------------------------------------------------
  document.addEventListener("keydown", function (ev) {
    var tag = (ev.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select" || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "j") { ev.preventDefault(); select(state.index + 1); }
    else if (ev.key === "k") { ev.preventDefault(); select(state.index - 1); }
  });
  var timer = null;
  $("search").addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(function () { state.offset = 0; loadList(); }, 250); });
  ["f-state", "f-byd", "f-sort"].forEach(function (id) { $(id).addEventListener("change", function () { state.offset = 0; loadList(); }); });
  $("prev-page").addEventListener("click", function () { if (state.offset > 0) { state.offset = Math.max(0, state.offset - state.limit); loadList(); } });
  $("next-page").addEventListener("click", function () { if (state.offset + state.limit < state.total) { state.offset += state.limit; loadList(); } });

  // ---- maps: before under, after on top clipped by the swipe ------------------------------
  function swipe(val) {
    $("map-after").style.clipPath = "inset(0 0 0 " + val + "%)";
    $("swipe-line").style.left = val + "%";
  }
  $("swipe").addEventListener("input", function (ev) { swipe(ev.target.value); });
  $("opacity").addEventListener("input", function (ev) {
    var o = Number(ev.target.value) / 100; $("map-after").dataset.opacity = o;
    state.maps.forEach(function (m) { if (m.getLayer("imagery") && m.getContainer().id === "map-after") m.setPaintProperty("imagery", "raster-opacity", o); });
  });
  swipe($("swipe").value);
  var empty = { type: "FeatureCollection", features: [] };
  function style(which) {
    var sources = { patches: { type: "geojson", data: empty }, scopes: { type: "geojson", data: empty }, selected: { type: "geojson", data: empty }, draft: { type: "geojson", data: empty } };
    var layers = [{ id: "bg", type: "background", paint: { "background-color": "#1d2630" } }];
    if (boot.round.imagery.indexOf(which) >= 0) {
      sources.img = { type: "raster", tiles: [location.origin + "/rounds/" + roundId + "/tiles/" + which + "/{z}/{x}/{y}"], tileSize: 256, maxzoom: 20 };
      layers.push({ id: "imagery", type: "raster", source: "img" });
    }
    layers.push({ id: "scopes", type: "line", source: "scopes", paint: { "line-color": "#4fc3f7", "line-width": 1.5, "line-dasharray": [2, 1] } });
    layers.push({ id: "patches-hit", type: "fill", source: "patches", paint: { "fill-color": "#ffd54f", "fill-opacity": 0.02 } });
    layers.push({ id: "patches", type: "line", source: "patches", paint: { "line-color": "#ffd54f", "line-width": 1.2 } });
    layers.push({ id: "selected", type: "line", source: "selected", paint: { "line-color": "#ff1744", "line-width": 3 } });
    layers.push({ id: "merge-sel", type: "fill", source: "patches", filter: ["in", ["get", "id"], ["literal", []]], paint: { "fill-color": "#00e676", "fill-opacity": 0.35 } });
    layers.push({ id: "draft-line", type: "line", source: "draft", paint: { "line-color": "#e040fb", "line-width": 2.5, "line-dasharray": [2, 1] } });
    layers.push({ id: "draft-points", type: "circle", source: "draft", paint: { "circle-color": "#e040fb", "circle-radius": 4 } });
    return { version: 8, sources: sources, layers: layers };
  }
  function initMaps() {
    if (!window.maplibregl) { text($("map-status"), "map library missing"); return; }
    try {
      ["before", "after"].forEach(function (which) {
        // opens on the round's patches this user may see (a county: its county), not on a fixed place
        var view = boot.extent ? { bounds: [[boot.extent[0], boot.extent[1]], [boot.extent[2], boot.extent[3]]], fitBoundsOptions: { padding: 40, maxZoom: 17 } }
                               : { center: [113.2, 35.2], zoom: 9 };
        var m = new maplibregl.Map(Object.assign({ container: "map-" + which, style: style(which), attributionControl: false, fadeDuration: 0, boxZoom: false }, view));  // shift-click selects patches to merge
        m.on("load", function () { if (which === "after") { state.mapReady = true; refreshFeatures(); } });
        state.maps.push(m);
      });
      var syncing = false;
      state.maps.forEach(function (m, i) {
        m.on("move", function () {
          if (syncing) return; syncing = true;
          var o = state.maps[1 - i]; o.jumpTo({ center: m.getCenter(), zoom: m.getZoom(), bearing: m.getBearing(), pitch: m.getPitch() });
          syncing = false;
        });
      });
      state.maps[1].on("moveend", refreshFeatures);
      // the after-map is clipped by the swipe, so either map may receive a click
      state.maps.forEach(function (m) {
        m.on("click", function (ev) {
          if (draw.mode === "split") { addSplitPoint(ev.lngLat); return; }
          var feats = m.queryRenderedFeatures([[ev.point.x - 4, ev.point.y - 4], [ev.point.x + 4, ev.point.y + 4]], { layers: ["patches-hit"] });
          var f = feats[0]; if (!f) return;
          if (ev.originalEvent && ev.originalEvent.shiftKey) { toggleMerge(f.properties); } else { openPatch(f.properties.id); }
        });
      });
      text($("map-status"), "");
    } catch (e) { text($("map-status"), "map unavailable: " + e.message); state.maps = []; }
  }
  async function refreshFeatures() {
    var m = state.maps[1]; if (!m || !state.mapReady) return;  // loaded() is false while any tile loads
    var b = m.getBounds(), bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(function (x) { return x.toFixed(6); }).join(",");
    try {
      var feats = await api.get("/api/rounds/" + roundId + "/features?bbox=" + bbox + "&zoom=" + m.getZoom().toFixed(2));
      var scopes = await api.get("/api/rounds/" + roundId + "/scopes?bbox=" + bbox);
      state.maps.forEach(function (mm) { if (mm.getSource("patches")) { mm.getSource("patches").setData(feats); mm.getSource("scopes").setData(scopes); } });
      state.markers.forEach(function (mk) { mk.remove(); }); state.markers = [];
      scopes.features.slice(0, 100).forEach(function (f) {
        var el = document.createElement("div"); el.className = "scope-label"; text(el, f.properties.name);
        var c = f.geometry.coordinates[0][0]; if (typeof c[0] !== "number") c = c[0];
        state.markers.push(new maplibregl.Marker({ element: el }).setLngLat(c).addTo(m));
      });
    } catch (e) { text($("map-status"), e.message); }
  }
  function focusMap(p) {
    if (!p.geometry) return;
    var sel = { type: "FeatureCollection", features: [{ type: "Feature", properties: {}, geometry: p.geometry }] };
    state.maps.forEach(function (m) {
      var apply = function () { if (m.getSource("selected")) m.getSource("selected").setData(sel); };
      if (m.loaded()) apply(); else m.once("load", apply);
    });
    if (state.maps[1] && p.bbox) {
      try { state.maps[1].fitBounds([[p.bbox[0], p.bbox[1]], [p.bbox[2], p.bbox[3]]], { padding: 80, maxZoom: 17, duration: 0 }); } catch (e) { /* map not ready */ }
    }
  }

  // ---- split (a line drawn across the patch) and merge (shift-click 2+ patches) ------------
  var draw = { mode: null, points: [], merge: {} };  // merge: id -> the version seen on the map
  window.tubanDraw = draw;  // for the browser test
  function setDraft() {
    var feats = draw.points.map(function (p) { return { type: "Feature", properties: {}, geometry: { type: "Point", coordinates: p } }; });
    if (draw.points.length > 1) feats.push({ type: "Feature", properties: {}, geometry: { type: "LineString", coordinates: draw.points } });
    state.maps.forEach(function (m) { if (m.getSource("draft")) m.getSource("draft").setData({ type: "FeatureCollection", features: feats }); });
  }
  function setMergeLayer() {
    var ids = Object.keys(draw.merge).map(Number);
    state.maps.forEach(function (m) { if (m.getLayer("merge-sel")) m.setFilter("merge-sel", ["in", ["get", "id"], ["literal", ids]]); });
    text($("merge-count"), ids.length); $("btn-merge").disabled = ids.length < 2;
    $("btn-draw-cancel").hidden = !ids.length && draw.mode !== "split";
  }
  function resetDraw() {
    draw.mode = null; draw.points = []; draw.merge = {};
    $("btn-split-done").hidden = true; $("btn-split-draw").hidden = false;
    state.maps.forEach(function (m) { m.getCanvas().style.cursor = ""; });
    setDraft(); setMergeLayer();
  }
  function addSplitPoint(ll) { draw.points.push([Number(ll.lng.toFixed(7)), Number(ll.lat.toFixed(7))]); setDraft(); $("btn-split-done").disabled = draw.points.length < 2; }
  function toggleMerge(props) {
    if (draw.merge[props.id] !== undefined) delete draw.merge[props.id]; else draw.merge[props.id] = Number(props.version);
    setMergeLayer();
  }
  $("btn-split-draw").addEventListener("click", function () {
    if (!state.patch) { showError({ message: t("review.no_patch") }); return; }
    draw.mode = "split"; draw.points = []; setDraft();
    $("btn-split-draw").hidden = true; $("btn-split-done").hidden = false; $("btn-split-done").disabled = true; $("btn-draw-cancel").hidden = false;
    state.maps.forEach(function (m) { m.getCanvas().style.cursor = "crosshair"; });
  });
  $("btn-split-done").addEventListener("click", async function () {
    if (!state.patch || draw.points.length < 2) return;
    var id = state.patch.id, body = { based_on_version: v(), line: { type: "LineString", coordinates: draw.points } };
    try {
      var out = await api.send("POST", "/api/patches/" + id + "/split", body);
      resetDraw(); flash(t("review.split_saved") + ": " + out.children.map(function (c) { return c.qdnm; }).join(", "));
      await loadList(); refreshFeatures(); await openPatch(out.children[0].id);
    } catch (e) { showError(e); }
  });
  $("btn-merge").addEventListener("click", async function () {
    var body = { patches: {} }; Object.keys(draw.merge).forEach(function (k) { body.patches[k] = draw.merge[k]; });
    try {
      var out = await api.send("POST", "/api/patches/merge", body);
      resetDraw(); flash(t("review.merge_saved") + ": " + out.qdnm);
      await loadList(); refreshFeatures(); await openPatch(out.id);
    } catch (e) { showError(e); }
  });
  $("btn-draw-cancel").addEventListener("click", resetDraw);
  document.addEventListener("keydown", function (ev) { if (ev.key === "Escape" && (draw.mode || Object.keys(draw.merge).length)) resetDraw(); });
  $("draw-tools").hidden = !boot.can["patch.split_merge"];

  window.tubanReview = state;  // for debugging and the browser test
  initMaps();
  loadList().then(function () {
    var m = /patch=(\d+)/.exec(location.hash);
    if (m) { var id = Number(m[1]); var i = state.items.findIndex(function (it) { return it.id === id; }); if (i >= 0) select(i); else openPatch(id); }
  }).catch(showError);
})();
