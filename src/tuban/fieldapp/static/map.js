// tuban field app: the patch map (离线影像地图). WebMercator imagery tiles (the round's before/after tiles, served
// from the offline cache by the service worker) under an SVG overlay: the patch, the device, photos with bearings,
// and the outline being confirmed, dragged (拖动顶点) or redrawn (重画: tap to add vertices).
"use strict";

(function () {
  const TILE = 256;
  const MAX_VERTICES = 200;

  function project(lon, lat, z) {
    const n = TILE * 2 ** z, s = Math.sin(Math.max(-85.0511, Math.min(85.0511, lat)) * Math.PI / 180);
    return [(lon + 180) / 360 * n, (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)) * n];
  }
  function unproject(x, y, z) {
    const n = TILE * 2 ** z;
    const lon = x / n * 360 - 180;
    const lat = Math.atan(Math.sinh(Math.PI * (1 - 2 * y / n))) * 180 / Math.PI;
    return [lon, lat];
  }
  const ringsOf = (g) => (!g ? [] : g.type === "Polygon" ? g.coordinates : g.type === "MultiPolygon" ? g.coordinates.flat() : []);

  class FieldMap {
    constructor(el) {
      this.el = el;
      this.tileLayer = document.createElement("div");
      this.tileLayer.className = "tiles";
      this.svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      el.append(this.tileLayer, this.svg);
      this.mode = "none";      // none | redraw | drag
      this.vertices = null;    // the outline being edited: [[lon, lat], …] (open ring)
      this.view = null;
      this.blobUrls = [];
      this.onchange = null;
      this.drag = null;
      this.svg.addEventListener("pointerdown", (e) => this.pointerDown(e));
      this.svg.addEventListener("pointermove", (e) => this.pointerMove(e));
      this.svg.addEventListener("pointerup", (e) => this.pointerUp(e));
      this.svg.addEventListener("pointercancel", () => { this.drag = null; });
    }

    // opts: {geometry, roundId, layer, zooms: [lo, hi], fix, photos}
    show(opts) {
      this.opts = opts;
      const w = this.el.clientWidth || 300, h = this.el.clientHeight || 300;
      const pts = ringsOf(opts.geometry).flat();
      for (const v of this.vertices || []) pts.push(v);
      if (!pts.length) return;
      const [lo, hi] = opts.zooms || [15, 18];
      let z = lo;
      for (let k = hi; k >= lo; k--) {  // the highest zoom at which the patch fits in 70 % of the map
        const xy = pts.map((p) => project(p[0], p[1], k));
        const dx = Math.max(...xy.map((q) => q[0])) - Math.min(...xy.map((q) => q[0]));
        const dy = Math.max(...xy.map((q) => q[1])) - Math.min(...xy.map((q) => q[1]));
        if (dx <= 0.7 * w && dy <= 0.7 * h) { z = k; break; }
      }
      const xy = pts.map((p) => project(p[0], p[1], z));
      const cx = (Math.max(...xy.map((q) => q[0])) + Math.min(...xy.map((q) => q[0]))) / 2;
      const cy = (Math.max(...xy.map((q) => q[1])) + Math.min(...xy.map((q) => q[1]))) / 2;
      const view = { z, x0: cx - w / 2, y0: cy - h / 2, w, h };
      const same = this.view && this.view.z === view.z && Math.abs(this.view.x0 - view.x0) < 1 &&
        Math.abs(this.view.y0 - view.y0) < 1 && this.tileKey === `${opts.roundId}/${opts.layer}`;
      this.view = view;
      if (!same) this.renderTiles();
      this.renderOverlay();
    }

    toScreen(lon, lat) {
      const [x, y] = project(lon, lat, this.view.z);
      return [x - this.view.x0, y - this.view.y0];
    }
    toLonLat(sx, sy) {
      return unproject(sx + this.view.x0, sy + this.view.y0, this.view.z);
    }

    renderTiles() {
      for (const u of this.blobUrls) URL.revokeObjectURL(u);
      this.blobUrls = [];
      this.tileLayer.textContent = "";
      const o = this.opts, v = this.view;
      this.tileKey = `${o.roundId}/${o.layer}`;
      if (!o.roundId) return;
      const n = 2 ** v.z;
      for (let tx = Math.floor(v.x0 / TILE); tx * TILE < v.x0 + v.w; tx++) {
        for (let ty = Math.floor(v.y0 / TILE); ty * TILE < v.y0 + v.h; ty++) {
          if (tx < 0 || ty < 0 || tx >= n || ty >= n) continue;
          const img = document.createElement("img");
          img.className = "tile";
          img.alt = "";
          img.style.left = `${tx * TILE - v.x0}px`;
          img.style.top = `${ty * TILE - v.y0}px`;
          const url = `/rounds/${o.roundId}/tiles/${o.layer}/${v.z}/${tx}/${ty}.png`;
          img.dataset.url = url;
          this.tileLayer.append(img);
          this.loadTile(img, url);
        }
      }
    }

    async loadTile(img, url) {
      // fetched (not <img src>) so the page sees whether the service worker answered from the offline cache
      try {
        const r = await fetch(url, { credentials: "same-origin" });
        if (!r.ok) { img.dataset.source = "missing"; return; }
        img.dataset.source = r.headers.get("X-Tuban-Cache") === "hit" ? "cache" : "network";
        const u = URL.createObjectURL(await r.blob());
        this.blobUrls.push(u);
        img.src = u;
      } catch (e) {
        img.dataset.source = "missing";  // offline and not downloaded
      }
    }

    renderOverlay() {
      const o = this.opts, v = this.view;
      const NS = "http://www.w3.org/2000/svg";
      this.svg.setAttribute("viewBox", `0 0 ${v.w} ${v.h}`);
      this.svg.textContent = "";
      const add = (tag, attrs) => {
        const e = document.createElementNS(NS, tag);
        for (const [k, val] of Object.entries(attrs)) e.setAttribute(k, val);
        this.svg.append(e);
        return e;
      };
      const path = (ring) => ring.map((p) => this.toScreen(p[0], p[1]).map((q) => q.toFixed(1)).join(",")).join(" ");
      for (const ring of ringsOf(o.geometry)) {
        add("polygon", { points: path(ring), class: "patch", fill: "rgba(220,60,40,.18)", stroke: "#e03a2b",
                         "stroke-width": 2 });
      }
      for (const ph of o.photos || []) {
        if (ph.lon == null) continue;
        const [x, y] = this.toScreen(ph.lon, ph.lat);
        add("circle", { cx: x, cy: y, r: 4, fill: "#f5b82e", stroke: "#333" });
        if (ph.bearing != null) {
          const a = ph.bearing * Math.PI / 180;
          add("line", { x1: x, y1: y, x2: x + 22 * Math.sin(a), y2: y - 22 * Math.cos(a), stroke: "#f5b82e",
                        "stroke-width": 2.5 });
        }
      }
      if (this.vertices && this.vertices.length) {
        const closed = this.vertices.length >= 3;
        add(closed ? "polygon" : "polyline", { points: path(this.vertices), class: "outline",
          fill: closed ? "rgba(40,120,255,.20)" : "none", stroke: "#2b7bff", "stroke-width": 2.5,
          "stroke-dasharray": this.mode === "none" ? "" : "6 4" });
        if (this.mode !== "none") {
          this.vertices.forEach((p, i) => {
            const [x, y] = this.toScreen(p[0], p[1]);
            const c = add("circle", { cx: x, cy: y, r: 9, class: "vertex", fill: "#fff", stroke: "#2b7bff",
                                      "stroke-width": 3 });
            c.dataset.index = String(i);
          });
        }
      }
      if (o.fix) {
        const [x, y] = this.toScreen(o.fix.lon, o.fix.lat);
        add("circle", { cx: x, cy: y, r: 6, fill: "#1d4ed8", stroke: "#fff", "stroke-width": 2, class: "fix" });
      }
    }

    // ---- outline editing -------------------------------------------------------------------
    setMode(mode, geometry) {
      this.mode = mode;
      if (mode === "redraw") this.vertices = [];
      else if (mode === "drag" && (!this.vertices || this.vertices.length < 3)) {
        const ring = ringsOf(geometry || this.opts.geometry)[0] || [];
        this.vertices = ring.slice(0, -1).map((p) => [p[0], p[1]]);
      }
      this.renderOverlay();
      this.changed();
    }
    clearOutline() { this.vertices = null; this.mode = "none"; this.renderOverlay(); this.changed(); }
    undo() { if (this.vertices && this.vertices.length) { this.vertices.pop(); this.renderOverlay(); this.changed(); } }
    finish() { this.mode = "none"; this.renderOverlay(); this.changed(); }
    outline() {
      if (!this.vertices || this.vertices.length < 3) return null;
      const ring = this.vertices.map((p) => [+p[0].toFixed(7), +p[1].toFixed(7)]);
      ring.push(ring[0].slice());
      return { type: "Polygon", coordinates: [ring] };
    }
    setOutline(geom) {
      const ring = ringsOf(geom)[0];
      this.vertices = ring ? ring.slice(0, -1).map((p) => [p[0], p[1]]) : null;
      this.mode = "none";
      if (this.view) this.renderOverlay();
    }
    changed() { if (this.onchange) this.onchange(this.outline(), this.vertices ? this.vertices.length : 0); }
    local(e) {
      const r = this.svg.getBoundingClientRect();
      return [(e.clientX - r.left) * this.view.w / r.width, (e.clientY - r.top) * this.view.h / r.height];
    }
    pointerDown(e) {
      if (this.mode === "drag" && e.target.dataset && e.target.dataset.index != null) {
        this.drag = { index: Number(e.target.dataset.index) };
        this.svg.setPointerCapture(e.pointerId);
        e.preventDefault();
      } else if (this.mode === "redraw") {
        this.tap = this.local(e);
      }
    }
    pointerMove(e) {
      if (!this.drag) return;
      const [sx, sy] = this.local(e);
      this.vertices[this.drag.index] = this.toLonLat(sx, sy);
      this.renderOverlay();
      e.preventDefault();
    }
    pointerUp(e) {
      if (this.drag) { this.drag = null; this.changed(); return; }
      if (this.mode === "redraw" && this.tap) {
        const [sx, sy] = this.local(e);
        if (Math.hypot(sx - this.tap[0], sy - this.tap[1]) < 10 && this.vertices.length < MAX_VERTICES) {
          this.vertices.push(this.toLonLat(sx, sy));
          this.renderOverlay();
          this.changed();
        }
        this.tap = null;
      }
    }
  }

  // ---- outline checks on the phone (the server checks the same again) ---------------------------
  function segmentsCross(a, b, c, d) {
    const o = (p, q, r) => Math.sign((q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]));
    return o(a, b, c) * o(a, b, d) < 0 && o(c, d, a) * o(c, d, b) < 0;
  }
  function outlineProblem(geom, maxVertices) {
    if (!geom) return null;
    const ring = geom.coordinates[0];
    const n = ring.length - 1;
    if (n < 3) return "至少 3 个顶点 at least 3 vertices";
    if (n > maxVertices) return `顶点过多 more than ${maxVertices} vertices`;
    for (let i = 0; i < n; i++) {
      for (let j = i + 2; j < n; j++) {
        if (i === 0 && j === n - 1) continue;
        if (segmentsCross(ring[i], ring[i + 1], ring[j], ring[j + 1])) return "轮廓自相交 the outline crosses itself";
      }
    }
    return null;
  }

  // ---- the offline download: every tile of the plan into Cache Storage (4 at a time) --------------
  async function downloadTiles(urls, progress) {
    const cache = await caches.open("tuban-field-tiles-v1");
    let done = 0, bytes = 0;
    const queue = urls.slice();
    const worker = async () => {
      while (queue.length) {
        const url = queue.shift();
        try {
          if (!(await cache.match(url))) {
            const resp = await fetch(url, { credentials: "same-origin", cache: "no-store" });
            if (resp.ok) { bytes += (await resp.clone().blob()).size; await cache.put(url, resp); }
          }
        } catch (e) { /* fetched again on the next download */ }
        done += 1;
        if (progress) progress(done, urls.length, bytes);
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    return bytes;
  }

  window.tubanFieldMap = { FieldMap, project, unproject, outlineProblem, downloadTiles };
})();
