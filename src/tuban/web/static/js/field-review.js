// Field records on the review page (外业核查结果): each patch's field records (fields, who/when, conflicts with both
// versions and a resolve action), its photos as points with bearing arrows and view cones on the after-image map,
// thumbnails (display copies through the permission-checked photo route) and the photo checks with their reasons.
// Reads window.tubanReview (review.js) and adds its own panel section, map layers and styles.
(function () {
  "use strict";
  var review = window.tubanReview, api = window.tubanApi;
  if (!review || !api) return;
  var boot = JSON.parse(document.getElementById("boot").textContent);
  var en = boot.lang === "en";
  // every string comes from the web catalogue (tuban/web/i18n/messages.json) embedded in the page
  var M = boot.messages || {};
  function t(key) { return M[key] || key; }
  function tk(key, fallback) { return M[key] || fallback; }  // a code's label, or the code itself
  var L = {};
  ["title", "none", "photos", "conflict_hard", "conflict_soft", "field", "base", "server", "device", "resolve", "resolved",
   "outcome", "party", "points", "reason", "recorded", "received", "bearing", "accuracy", "outline", "vertices", "area",
   "was", "shift", "held", "forced"].forEach(function (k) { L[k] = t("field." + k); });
  L.noPhotos = t("field.no_photos");
  function kindLabel(k) { return tk("field.photo." + k, k); }
  // a check's reason in the page's language: the catalogue's template for its key with its params
  // (photo kinds translated); the English message when the key is unknown (records checked before keys existed)
  function checkText(c) {
    var tpl = c.key ? M["check." + c.key] : null;
    if (!tpl) return c.message || "";
    var params = c.params || {};
    return tpl.replace(/\{(\w+)\}/g, function (whole, name) {
      var v = params[name];
      if (v == null) return whole;
      if (Array.isArray(v)) return v.map(kindLabel).join(en ? ", " : "、");
      return String(v);
    });
  }
  var $ = function (id) { return document.getElementById(id); };
  function el(tag, cls, txt) {
    var e = document.createElement(tag); if (cls) e.className = cls;
    if (txt != null) e.textContent = String(txt); return e;
  }
  function fmtTime(s) { if (!s) return ""; var d = new Date(s); return isNaN(d) ? String(s) : d.toLocaleString(en ? "en" : "zh-CN", { hour12: false }); }

  // ---- styles (kept here: the page's stylesheet belongs to the review app) ------------------
  var css = ".field-box h4{margin:.6rem 0 .2rem}.field-rec{border:1px solid var(--line,#d6dbe0);border-radius:6px;padding:.4rem;margin:.3rem 0}" +
    ".field-rec.conflict-hard{border-color:#b3261e;background:#fff4f3}.field-rec .meta{color:#5f6b76;font-size:12px}" +
    ".field-rec table{border-collapse:collapse;width:100%;font-size:12px}.field-rec td,.field-rec th{border:1px solid #e1e5ea;padding:2px 4px;text-align:left}" +
    ".field-photos{list-style:none;padding:0;margin:0;display:grid;grid-template-columns:1fr;gap:.4rem}" +
    ".field-photo{display:grid;grid-template-columns:96px 1fr;gap:.4rem;border:1px solid #e1e5ea;border-radius:6px;padding:.3rem}" +
    ".field-photo img{width:96px;height:72px;object-fit:cover;border-radius:4px;background:#eee}" +
    ".field-photo.active{outline:2px solid #ff9800}.checks{list-style:none;margin:0;padding:0;font-size:12px}" +
    ".chk-pass::before{content:'✔ ';color:#1b7f3b}.chk-fail::before{content:'✖ ';color:#b3261e}.chk-unknown::before{content:'? ';color:#8a6d00}" +
    ".chk-fail{color:#b3261e}.field-photo-marker{width:26px;height:26px;cursor:pointer}" +
    ".field-photo-marker svg{display:block}.field-badge{font-size:11px;padding:0 .35rem;border-radius:8px;background:#e7eaee;margin-left:.3rem}" +
    ".field-badge.hard{background:#b3261e;color:#fff}.field-badge.soft{background:#ffe08a}";
  var st = document.createElement("style"); st.textContent = css; document.head.appendChild(st);

  // ---- the panel section ------------------------------------------------------------------------
  var box = el("details", "field-box"); box.id = "field-box"; box.open = true;
  box.appendChild(el("summary", null, L.title));
  var recList = el("div"); recList.id = "field-records"; box.appendChild(recList);
  box.appendChild(el("h4", null, L.photos));
  var setLine = el("p", "small"); setLine.id = "field-photoset"; box.appendChild(setLine);
  var photoList = el("ul", "field-photos"); photoList.id = "field-photos"; box.appendChild(photoList);
  var body = $("panel-body");
  var hist = $("history"); var anchor = hist ? hist.closest("details") : null;
  if (anchor && anchor.parentNode === body) body.insertBefore(box, anchor); else body.appendChild(box);

  var current = { id: null, version: null, photos: [], markers: [], seq: 0 };

  function valueText(v) { return v == null || v === "" ? "—" : String(v); }

  function renderRecord(r, patchVersion) {
    var c = r.conflict || null, rec = r.record || {};
    var hardOpen = c && c.kind === "hard" && !r.resolution;
    var div = el("div", "field-rec" + (hardOpen ? " conflict-hard" : "")); div.dataset.id = r.id;
    var head = el("div");
    head.appendChild(el("b", null, tk("field.kind." + r.kind, r.kind)));
    if (c) head.appendChild(el("span", "field-badge " + c.kind, c.kind === "hard" ? (r.resolution ? L.resolved : t("field.badge_hard")) : t("field.badge_soft")));
    div.appendChild(head);
    div.appendChild(el("div", "meta", (r.user || "?") + " · " + L.recorded + " " + fmtTime(rec.recorded_at) + " · " + L.received + " " + fmtTime(r.created_at)));
    var lines = el("ul", "small");
    if (rec.outcome) lines.appendChild(el("li", null, L.outcome + ": " + tk("field.outcome." + rec.outcome, rec.outcome) + (rec.not_disturbance_reason ? " · " + L.reason + ": " + rec.not_disturbance_reason : "")));
    Object.keys(rec.fields || {}).forEach(function (k) { lines.appendChild(el("li", "rec-field", k + ": " + valueText(rec.fields[k]))); });
    if (rec.responsible_party) lines.appendChild(el("li", null, L.party + ": " + rec.responsible_party));
    if (rec.points && rec.points.length) lines.appendChild(el("li", null, L.points + ": " + rec.points.map(function (p) { return p.label || (p.lon.toFixed(5) + "," + p.lat.toFixed(5)); }).join("、")));
    if (rec.outline) {
      var oc = r.outline_check || {};
      var ol = el("li", "rec-outline", L.outline + ": " + (oc.vertices != null ? oc.vertices + " " + L.vertices : "") +
        (oc.area_ha != null ? " · " + L.area + " " + oc.area_ha + " ha (" + L.was + " " + oc.patch_area_ha + " ha)" : "") +
        (oc.hausdorff_m != null ? " · " + L.shift + " " + oc.hausdorff_m + " m" : ""));
      lines.appendChild(ol);
    }
    if (r.held && r.held.released_at) lines.appendChild(el("li", "rec-held" + (r.held.forced ? " error" : ""), r.held.forced ? L.forced : L.held));
    div.appendChild(lines);
    if (c && c.kind === "soft") div.appendChild(el("p", "small", L.conflict_soft + " (v" + c.based_on_version + " → v" + c.server_version + ")"));
    if (c && c.kind === "hard") {
      div.appendChild(el("p", "small" + (hardOpen ? " error" : ""), L.conflict_hard + " (v" + c.based_on_version + " → v" + c.server_version + ")"));
      var tbl = el("table", "conflict-table"), tr = el("tr");
      [L.field, L.base, L.server, L.device].forEach(function (h) { tr.appendChild(el("th", null, h)); });
      tbl.appendChild(tr);
      Object.keys(c.fields || {}).forEach(function (k) {
        var f = c.fields[k], row = el("tr"); row.dataset.field = k;
        row.appendChild(el("td", null, k)); row.appendChild(el("td", null, valueText(f.base)));
        ["server", "device"].forEach(function (side) {
          var td = el("td", "v-" + side);
          if (hardOpen) {
            var lab = el("label"), radio = el("input"); radio.type = "radio"; radio.name = "res-" + r.id + "-" + k; radio.value = side;
            if (side === "server") radio.checked = true;
            lab.appendChild(radio); lab.appendChild(document.createTextNode(" " + valueText(f[side]))); td.appendChild(lab);
          } else {
            td.textContent = valueText(f[side]);
            if (r.resolution && r.resolution.choices && r.resolution.choices[k] === side) td.appendChild(el("b", null, " ✔"));
          }
          row.appendChild(td);
        });
        tbl.appendChild(row);
      });
      div.appendChild(tbl);
      if (r.resolution) div.appendChild(el("p", "meta", L.resolved + " · " + r.resolution.by + " · " + fmtTime(r.resolution.at)));
      if (hardOpen) {
        var btn = el("button", "btn-resolve", L.resolve); btn.type = "button";
        var msg = el("span", "small");
        btn.addEventListener("click", function () { resolve(r, c, div, msg); });
        div.appendChild(btn); div.appendChild(msg);
      }
    }
    return div;
  }

  async function resolve(r, c, div, msg) {
    var choices = {};
    Object.keys(c.fields || {}).forEach(function (k) {
      var sel = div.querySelector('input[name="res-' + r.id + "-" + k + '"]:checked'); choices[k] = sel ? sel.value : "server";
    });
    var version = review.patch && review.patch.fields ? review.patch.fields.version : current.version;
    try {
      await api.send("POST", "/api/field/records/" + r.id + "/resolve", { choices: choices, based_on_version: version });
      var active = document.querySelector(".patch-item.active");
      if (active) active.click(); else load(current.id, true);  // the patch's fields and version changed
    } catch (e) { msg.textContent = " " + tubanApi.describe(e); msg.className = "small error"; }
  }

  function renderPhotos(data) {
    photoList.textContent = "";
    var ps = data.photo_set;
    setLine.textContent = ps ? (t("check.name.photo_set") + ": " + tk("check.status." + ps.status, ps.status) + " · " + checkText(ps)) : "";
    setLine.className = "small chk-" + (ps ? ps.status : "unknown");
    if (!data.photos.length) { photoList.appendChild(el("li", "hint", L.noPhotos)); return; }
    data.photos.forEach(function (p) {
      var li = el("li", "field-photo"); li.dataset.id = p.id;
      var a = el("a"); a.href = "/api/field/photos/" + p.id; a.target = "_blank"; a.rel = "noopener";
      var img = el("img"); img.src = "/api/field/photos/" + p.id + "?display=1"; img.alt = (p.kind ? kindLabel(p.kind) : "") + " #" + p.id; img.loading = "lazy";
      a.appendChild(img); li.appendChild(a);
      var info = el("div");
      var overall = p.checks && p.checks.status ? p.checks.status : "unknown";
      var title = el("div", null, (p.kind ? kindLabel(p.kind) : "—") + " · " + (p.user || "?") + " · " + fmtTime(p.taken_at));
      title.appendChild(el("span", "field-badge photo-status chk-" + overall, tk("check.status." + overall, overall)));
      info.appendChild(title);
      info.appendChild(el("div", "meta small", L.bearing + " " + (p.bearing == null ? "—" : Math.round(p.bearing) + "°") + " · " + L.accuracy + " " + (p.accuracy_m == null ? "—" : Math.round(p.accuracy_m) + " m")));
      var ul = el("ul", "checks");
      ((p.checks && p.checks.results) || []).forEach(function (c) {
        var item = el("li", "check chk-" + c.status, tk("check.name." + c.name, c.name) + " · " + tk("check.status." + c.status, c.status) + " — " + checkText(c));
        item.dataset.check = c.name; ul.appendChild(item);
      });
      info.appendChild(ul); li.appendChild(info);
      li.addEventListener("mouseenter", function () { highlight(p.id); });
      photoList.appendChild(li);
    });
  }

  // ---- map: points, bearing arrows (DOM markers rotated with the map) and view cones -----------
  function afterMap() { return review.maps && review.maps[1]; }
  function offset(lon, lat, bearingDeg, m) {
    var b = bearingDeg * Math.PI / 180, dn = m * Math.cos(b), de = m * Math.sin(b);
    return [lon + de / (111320 * Math.cos(lat * Math.PI / 180)), lat + dn / 110574];
  }
  function cones(photos, camera) {
    var half = (camera && camera.fov_deg ? camera.fov_deg : 60) / 2;
    var len = Math.min(camera && camera.view_range_m ? camera.view_range_m : 300, 60);  // drawn short: a hint, not the check's range
    return { type: "FeatureCollection", features: photos.filter(function (p) { return p.lon != null && p.lat != null && p.bearing != null; }).map(function (p) {
      var ring = [[p.lon, p.lat]];
      for (var i = 0; i <= 12; i++) ring.push(offset(p.lon, p.lat, p.bearing - half + (2 * half * i) / 12, len));
      ring.push([p.lon, p.lat]);
      return { type: "Feature", properties: { id: p.id, status: (p.checks && p.checks.status) || "unknown" }, geometry: { type: "Polygon", coordinates: [ring] } };
    }) };
  }
  function arrowSvg(status) {
    var color = status === "pass" ? "#1b7f3b" : status === "fail" ? "#b3261e" : "#8a6d00";
    return '<svg viewBox="0 0 26 26" width="26" height="26" aria-hidden="true"><circle cx="13" cy="15" r="5" fill="' + color +
      '" stroke="#fff" stroke-width="2"/><path d="M13 1 L19 11 L13 8 L7 11 Z" fill="' + color + '" stroke="#fff" stroke-width="1"/></svg>';
  }
  function ensureLayers(m) {
    if (m.getSource("field-cones")) return;
    m.addSource("field-cones", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
    m.addLayer({ id: "field-cones", type: "fill", source: "field-cones", paint: {
      "fill-color": ["match", ["get", "status"], "pass", "#43a047", "fail", "#e53935", "#fbc02d"], "fill-opacity": 0.28 } });
    m.addLayer({ id: "field-cones-line", type: "line", source: "field-cones", paint: { "line-color": "#ffffff", "line-width": 1 } });
    m.addSource("field-outlines", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
    m.addLayer({ id: "field-outline", type: "line", source: "field-outlines", paint: {
      "line-color": "#2b7bff", "line-width": 3, "line-dasharray": [2, 1] } });
  }
  function outlines(records) {  // outlines redrawn in the field (the patch itself is not changed)
    return { type: "FeatureCollection", features: (records || []).filter(function (r) { return r.record && r.record.outline; })
      .map(function (r) { return { type: "Feature", properties: { id: r.id, kind: r.kind }, geometry: r.record.outline }; }) };
  }
  function drawMap(data, records) {
    current.markers.forEach(function (mk) { mk.remove(); }); current.markers = [];
    var m = afterMap(); if (!m || !window.maplibregl) return;
    var seq = current.seq, tries = 0;
    var apply = function () {  // the style may still be loading (or reloading): try again shortly
      if (seq !== current.seq) return;
      try {
        ensureLayers(m); current.cones = cones(data.photos, data.camera); m.getSource("field-cones").setData(current.cones);
        current.outlines = outlines(records); m.getSource("field-outlines").setData(current.outlines);
      }
      catch (e) { if (++tries < 100) setTimeout(apply, 150); else current.mapError = String(e); }
    };
    apply();
    data.photos.forEach(function (p) {
      if (p.lon == null || p.lat == null) return;
      var e = el("div", "field-photo-marker"); e.dataset.id = p.id; e.dataset.bearing = p.bearing == null ? "" : String(p.bearing);
      e.title = (p.kind ? kindLabel(p.kind) : "") + " #" + p.id + (p.bearing == null ? "" : " · " + L.bearing + " " + Math.round(p.bearing) + "°");
      e.innerHTML = arrowSvg(p.checks && p.checks.status);
      if (p.bearing == null) e.querySelector("path").setAttribute("visibility", "hidden");
      e.addEventListener("click", function () { highlight(p.id); var li = photoList.querySelector('[data-id="' + p.id + '"]'); if (li) li.scrollIntoView({ block: "nearest" }); });
      var mk = new maplibregl.Marker({ element: e, rotation: p.bearing || 0, rotationAlignment: "map", anchor: "center" })
        .setLngLat([p.lon, p.lat]).addTo(m);
      current.markers.push(mk);
    });
  }
  function highlight(id) {
    photoList.querySelectorAll(".field-photo").forEach(function (li) { li.classList.toggle("active", li.dataset.id === String(id)); });
  }

  // ---- loading on patch change ---------------------------------------------------------------
  async function load(id, force) {
    var version = review.patch && review.patch.fields ? review.patch.fields.version : null;
    if (!force && id === current.id && version === current.version) return;
    current.id = id; current.version = version;
    var seq = ++current.seq;
    try {
      var recs = await api.get("/api/field/patches/" + id + "/records");
      var photos = await api.get("/api/field/patches/" + id + "/photos");
      if (seq !== current.seq) return;  // another patch was opened meanwhile
      recList.textContent = "";
      if (!recs.records.length) recList.appendChild(el("p", "hint", L.none));
      recs.records.forEach(function (r) { recList.appendChild(renderRecord(r, recs.patch_version)); });
      renderPhotos(photos); drawMap(photos, recs.records);
      box.dataset.loaded = String(id);
      // photos are checked just after they are acknowledged: look again while some are pending
      if (photos.photos.some(function (p) { return p.checks && p.checks.status === "pending"; })) {
        setTimeout(function () { if (seq === current.seq) load(id, true); }, 1500);
      }
    } catch (e) {
      if (seq !== current.seq) return;
      recList.textContent = ""; recList.appendChild(el("p", "error", (e.status || "") + " " + e.message));
    }
  }
  function check() { if (review.patch && review.patch.id != null) load(review.patch.id, false); }
  var obs = new MutationObserver(check);
  ["p-title", "p-version"].forEach(function (id) { var n = $(id); if (n) obs.observe(n, { childList: true, characterData: true, subtree: true }); });
  window.tubanFieldReview = { reload: function () { if (current.id != null) load(current.id, true); }, state: current };
  check();
})();
