// tuban field app (外业核查): offline-first. Everything stays in IndexedDB until the server acknowledged it.
"use strict";

const $ = (sel) => document.querySelector(sel);
const CHUNK = 256 * 1024;
const RETRY_MS = 4000;
const HERE_M = 50;
const state = { me: null, tasks: [], fix: null, heading: null, current: null, draft: null, syncing: false,
                map: null, layer: "after", tilePlan: null, pendingPlan: null };

// ---------- IndexedDB ----------
let dbp = null;
function db() {
  if (!dbp) {
    dbp = new Promise((resolve, reject) => {
      const req = indexedDB.open("tuban-field", 1);
      req.onupgradeneeded = () => {
        const d = req.result;
        d.createObjectStore("kv");
        d.createObjectStore("tasks", { keyPath: "id" });
        d.createObjectStore("records", { keyPath: "client_id" }).createIndex("patch_id", "patch_id");
        d.createObjectStore("photos", { keyPath: "client_id" }).createIndex("patch_id", "patch_id");
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  return dbp;
}
async function tx(store, mode, fn) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const t = d.transaction(store, mode);
    const s = t.objectStore(store);
    let out;
    Promise.resolve(fn(s)).then((v) => { out = v; });
    t.oncomplete = () => resolve(out);
    t.onerror = () => reject(t.error);
    t.onabort = () => reject(t.error);
  });
}
const req2p = (r) => new Promise((res, rej) => { r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });
const put = (store, value, key) => tx(store, "readwrite", (s) => { s.put(value, key); });
const get = (store, key) => tx(store, "readonly", (s) => req2p(s.get(key)));
const all = (store) => tx(store, "readonly", (s) => req2p(s.getAll()));
const byPatch = (store, id) => tx(store, "readonly", (s) => req2p(s.index("patch_id").getAll(id)));

// ---------- HTTP ----------
function csrf() {
  const m = document.cookie.match(/(?:^|;\s*)tuban_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}
async function api(method, url, body, headers) {
  const h = Object.assign({ "X-CSRF-Token": csrf() }, headers || {});
  let payload = body;
  if (body !== undefined && !(body instanceof Blob) && !(body instanceof ArrayBuffer)) {
    h["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  return fetch(url, { method, headers: h, body: payload, credentials: "same-origin", cache: "no-store" });
}

// ---------- geometry ----------
const R = 6371008.8;
const rad = (d) => d * Math.PI / 180;
function distance(lon1, lat1, lon2, lat2) {
  const dphi = rad(lat2 - lat1), dl = rad(lon2 - lon1);
  const a = Math.sin(dphi / 2) ** 2 + Math.cos(rad(lat1)) * Math.cos(rad(lat2)) * Math.sin(dl / 2) ** 2;
  return 2 * R * Math.asin(Math.sqrt(a));
}
function bearing(lon1, lat1, lon2, lat2) {
  const y = Math.sin(rad(lon2 - lon1)) * Math.cos(rad(lat2));
  const x = Math.cos(rad(lat1)) * Math.sin(rad(lat2)) - Math.sin(rad(lat1)) * Math.cos(rad(lat2)) * Math.cos(rad(lon2 - lon1));
  return (Math.atan2(y, x) * 180 / Math.PI + 360) % 360;
}
function rings(geom) {
  if (!geom) return [];
  return geom.type === "Polygon" ? geom.coordinates : geom.type === "MultiPolygon" ? geom.coordinates.flat() : [];
}
function centroid(geom) {
  const pts = rings(geom)[0] || [[0, 0]];
  const n = Math.max(pts.length - 1, 1);
  let x = 0, y = 0;
  for (let i = 0; i < n; i++) { x += pts[i][0]; y += pts[i][1]; }
  return [x / n, y / n];
}
function inside(geom, lon, lat) {
  let hit = false;
  for (const ring of rings(geom)) {
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const [xi, yi] = ring[i], [xj, yj] = ring[j];
      if ((yi > lat) !== (yj > lat) && lon < (xj - xi) * (lat - yi) / (yj - yi) + xi) hit = !hit;
    }
  }
  return hit;
}
function distanceToPatch(geom, lon, lat) {
  if (inside(geom, lon, lat)) return 0;
  const kx = R * Math.cos(rad(lat)) * Math.PI / 180, ky = R * Math.PI / 180;
  let best = Infinity;
  for (const ring of rings(geom)) {
    for (let i = 0; i + 1 < ring.length; i++) {
      const ax = (ring[i][0] - lon) * kx, ay = (ring[i][1] - lat) * ky;
      const bx = (ring[i + 1][0] - lon) * kx, by = (ring[i + 1][1] - lat) * ky;
      const dx = bx - ax, dy = by - ay, len = dx * dx + dy * dy;
      const t = len ? Math.max(0, Math.min(1, -(ax * dx + ay * dy) / len)) : 0;
      best = Math.min(best, Math.hypot(ax + t * dx, ay + t * dy));
    }
  }
  return best;
}
const fmtM = (m) => (m >= 1000 ? (m / 1000).toFixed(1) + " km" : Math.round(m) + " m");
const fmtBytes = (b) => (b >= 1048576 ? (b / 1048576).toFixed(1) + " MB" : Math.ceil(b / 1024) + " KB");
function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
async function sha256(buf) {
  const d = await crypto.subtle.digest("SHA-256", buf);
  return [...new Uint8Array(d)].map((x) => x.toString(16).padStart(2, "0")).join("");
}

// ---------- status per task ----------
const STATUS_ZH = { saved: "已保存 saved", queued: "待上传 queued", uploading: "上传中 uploading", done: "已完成 done",
                    held: "已接收，等待前一条 held", invalid: "被拒绝，请修改 invalid",
                    conflict: "有冲突 conflict", unpermitted: "无权限，已保留 kept, not permitted" };
async function taskStatus(id) {
  const items = [...await byPatch("records", id), ...await byPatch("photos", id)].map((x) => x.status);
  if (!items.length) return "";
  for (const s of ["conflict", "invalid", "unpermitted", "uploading", "queued", "saved", "held"]) if (items.includes(s)) return s;
  return "done";
}

// ---------- views ----------
function show(id) {
  for (const s of ["login", "home", "detail"]) $("#" + s).hidden = s !== id;
}
function setNet() {
  const on = navigator.onLine;
  $("#net").textContent = on ? "在线 online" : "离线 offline";
  $("#net").className = "pill" + (on ? "" : " offline");
}
let renderSeq = 0;

// Builds the whole list off-page and swaps it in at the end; a render that a newer one
// overtook while awaiting task statuses drops its result (no doubled rows).
async function renderTasks() {
  const seq = ++renderSeq;
  const list = $("#tasks");
  const items = [];
  const fix = state.fix;
  const rows = state.tasks.map((t) => {
    const d = fix ? distanceToPatch(t.geometry, fix.lon, fix.lat) : null;
    const c = centroid(t.geometry);
    return { t, d, b: fix ? bearing(fix.lon, fix.lat, c[0], c[1]) : null };
  });
  rows.sort((a, b) => (a.d ?? Infinity) - (b.d ?? Infinity));
  for (const { t, d, b } of rows) {
    const li = document.createElement("li");
    li.dataset.id = t.id;
    const title = document.createElement("strong");
    title.textContent = t.properties.qdnm;
    const right = document.createElement("span");
    right.className = "dist";
    right.textContent = d === null ? "—" : `${fmtM(d)} · ${Math.round(b)}°`;
    const addr = document.createElement("span");
    addr.className = "addr";
    addr.textContent = `${t.properties.address || ""} ${t.properties.qtype || ""}`;
    const st = await taskStatus(t.id);
    const badge = document.createElement("span");
    if (st) { badge.className = "status " + st; badge.textContent = STATUS_ZH[st]; }
    li.append(title, right, addr, badge);
    if (d !== null && d <= HERE_M) {
      const here = document.createElement("span");
      here.className = "here";
      here.textContent = "我在这里 I am here";
      li.append(here);
    }
    li.addEventListener("click", () => openTask(t.id));
    items.push(li);
  }
  if (seq !== renderSeq) return;
  list.replaceChildren(...items);
  $("#pos").textContent = fix ? `位置 ${fix.lat.toFixed(5)}, ${fix.lon.toFixed(5)} ±${Math.round(fix.accuracy)} m`
                              : "定位中… locating";
}

function fillSelect(sel, items, value, blank) {
  sel.textContent = "";
  if (blank) sel.append(new Option("", ""));
  for (const i of items) sel.append(new Option(`${i.zh}`, i.code));
  sel.value = value || "";
}

function drawMap(t, photos) {
  if (!state.map) {
    state.map = new window.tubanFieldMap.FieldMap($("#d-map"));
    state.map.onchange = (outline, n) => showOutlineInfo(outline, n);
  }
  const plan = state.tilePlan;
  state.map.show({ geometry: t.geometry, roundId: t.properties.round_id, layer: state.layer,
                   zooms: plan && plan.zooms ? plan.zooms : [15, 18], fix: state.fix, photos });
}

function showOutlineInfo(outline, n) {
  const m = state.map;
  const mode = m ? m.mode : "none";
  const problem = window.tubanFieldMap.outlineProblem(outline, (state.me.policy || {}).outline_max_vertices || 200);
  const info = $("#ol-info");
  info.className = "muted" + (problem && mode === "none" && outline ? " err" : "");
  info.textContent = mode === "redraw" ? `重画中 redrawing: ${n} 个顶点 vertices (点击地图添加 tap the map)`
    : mode === "drag" ? `拖动顶点 drag the vertices (${n})`
    : outline ? `新轮廓 new outline: ${n} 个顶点 vertices` + (problem ? ` · ${problem}` : "")
    : "轮廓未修改 outline confirmed as is";
  for (const id of ["#btn-ol-undo", "#btn-ol-done"]) $(id).hidden = mode === "none";
}

function outlineTool(mode) {
  const m = state.map;
  if (!m) return;
  if (mode === "done") m.finish();
  else if (mode === "undo") m.undo();
  else if (mode === "clear") m.clearOutline();
  else m.setMode(mode, state.current.geometry);
}

async function openTask(id) {
  const t = state.tasks.find((x) => x.id === id);
  if (!t) return;
  state.current = t;
  const p = t.properties;
  const saved = (await byPatch("records", id)).filter((r) => r.status === "saved" || r.status === "invalid").pop();
  state.draft = saved ? saved : { client_id: uuid(), patch_id: id, points: [] };
  $("#d-title").textContent = `图斑 ${p.qdnm}`;
  $("#d-attrs").innerHTML = "";
  for (const [k, label] of [["round", "期次 round"], ["byd", "合规性 BYD"], ["qarea", "面积 ha"], ["prnm", "项目 project"],
                            ["field_start", "外业开始"], ["field_end", "外业截止"]]) {
    const dt = document.createElement("dt"); dt.textContent = label;
    const dd = document.createElement("dd"); dd.textContent = p[k] ?? "—";
    $("#d-attrs").append(dt, dd);
  }
  const f = $("#record-form");
  const cl = state.me.codelists;
  const v = saved ? saved.fields : { QTYPE: p.qtype, QDCS: p.qdcs, ADDRESS: p.address, PROBLEM: p.problem,
                                     PROPOSAL: p.proposal, MEMO: p.memo };
  fillSelect(f.QTYPE, cl.QTYPE, v.QTYPE, true);
  fillSelect(f.QDCS, cl.QDCS, v.QDCS, true);
  fillSelect(f.not_disturbance_reason, cl.REJECT_REASON, saved ? saved.not_disturbance_reason : "", true);
  for (const k of ["ADDRESS", "PROBLEM", "PROPOSAL", "MEMO"]) f[k].value = v[k] || "";
  f.responsible_party.value = saved ? saved.responsible_party || "" : "";
  $("#save-msg").className = "msg" + (saved && saved.status === "invalid" ? " err" : "");
  $("#save-msg").textContent = saved && saved.status === "invalid"
    ? `服务器拒绝，请修改后重新保存 refused by the server: ${(saved.server && saved.server.title) || ""}` : "";
  show("detail");
  updateNav();
  await renderPhotos();
  state.map.setOutline(saved ? saved.outline : null);
  showOutlineInfo(state.map.outline(), state.map.vertices ? state.map.vertices.length : 0);
  renderPoints();
}

function updateNav() {
  const t = state.current;
  if (!t || !state.fix) { $("#d-nav").textContent = "等待定位 waiting for position"; return; }
  const c = centroid(t.geometry);
  const d = distanceToPatch(t.geometry, state.fix.lon, state.fix.lat);
  const b = bearing(state.fix.lon, state.fix.lat, c[0], c[1]);
  $("#d-nav").textContent = (d <= HERE_M ? "✔ 我在这里 I am here · " : "") + `距离 ${fmtM(d)} · 方位 ${Math.round(b)}°`;
}

function renderPoints() {
  const ul = $("#points");
  ul.textContent = "";
  for (const p of state.draft.points) {
    const li = document.createElement("li");
    li.textContent = `${p.label || "点"} (${p.lat.toFixed(5)}, ${p.lon.toFixed(5)})`;
    ul.append(li);
  }
}

function localChecks(photo, t) {
  const out = [];
  const pol = state.me.policy;
  if (photo.lon == null) out.push(["location", "unknown", "无定位 no position"]);
  else {
    const d = distanceToPatch(t.geometry, photo.lon, photo.lat);
    out.push(["location", d <= pol.max_distance_m ? "pass" : "fail", `距图斑 ${fmtM(d)}`]);
  }
  if (photo.accuracy_m == null) out.push(["accuracy", "unknown", "精度未知"]);
  else out.push(["accuracy", photo.accuracy_m <= pol.max_accuracy_m ? "pass" : "fail", `精度 ±${Math.round(photo.accuracy_m)} m`]);
  const day = new Intl.DateTimeFormat("sv-SE", { timeZone: pol.field_window_timezone || "Asia/Shanghai" })
    .format(new Date(photo.taken_at));
  const s = t.properties.field_start, e = t.properties.field_end;
  if (s || e) out.push(["field_window", (!s || day >= s) && (!e || day <= e) ? "pass" : "fail", `拍摄日期 ${day}`]);
  return out;
}

let photosSeq = 0;

// As renderTasks: the list is replaced at once, and only by the newest render (photos are
// added in quick succession, each add renders).
async function renderPhotos() {
  const seq = ++photosSeq;
  const ul = $("#photos");
  const rows = [];
  const items = await byPatch("photos", state.current.id);
  if (seq !== photosSeq) return;
  drawMap(state.current, items);
  for (const ph of items) {
    const li = document.createElement("li");
    const serverDone = ph.server_checks && ph.server_checks.status !== "pending";
    const checks = serverDone ? ph.server_checks.results.map((r) => [r.name, r.status, r.message])
      : localChecks(ph, state.current);
    if (ph.server_checks && !serverDone) checks.push(["server", "unknown", "服务器检查中 being checked on the server"]);
    li.innerHTML = "";
    const head = document.createElement("span");
    head.textContent = `${ph.kind} · ${fmtBytes(ph.size)} · `;
    const st = document.createElement("span");
    st.className = "status " + ph.status;
    st.textContent = STATUS_ZH[ph.status] || ph.status;
    li.append(head, st);
    for (const [name, status, msg] of checks) {
      const c = document.createElement("div");
      c.className = "chk-" + status;
      c.textContent = `${status === "pass" ? "✔" : status === "fail" ? "✘" : "?"} ${name}: ${msg}`;
      li.append(c);
    }
    rows.push(li);
  }
  ul.replaceChildren(...rows);
}

// ---------- actions ----------
function budgetParam() {
  const mb = Number($("#budget-mb").value);
  return mb > 0 ? `&budget_mb=${mb}` : "";
}

async function checkTasks() {
  const r = await api("GET", "/api/field/tasks?summary=true");
  if (!r.ok) return;
  const s = await r.json();
  const t = await api("GET", "/api/field/tiles/plan?x=1" + budgetParam());
  const plan = t.ok ? await t.json() : null;
  state.pendingPlan = plan;
  let text = `${s.count} 个图斑 patches, ${s.chips} 张影像 chips, 约 ${fmtBytes(s.estimate_bytes)}`;
  if (plan) {
    if (!$("#budget-mb").value) $("#budget-mb").value = Math.round(plan.budget_bytes / 1048576);
    text += plan.fits
      ? ` · 离线影像 imagery ${plan.count} 瓦片 tiles (级别 z${plan.zooms[0]}–${plan.zooms[1]}), 约 ${fmtBytes(plan.estimate_bytes)}` +
        ` / 预算 budget ${fmtBytes(plan.budget_bytes)}` + (plan.trimmed ? ` · 已缩减 trimmed from z${plan.requested_zooms[1]}` : "")
      : ` · 离线影像超出预算，不下载 imagery ${fmtBytes(plan.estimate_bytes)} over the budget ${fmtBytes(plan.budget_bytes)}: not downloaded`;
  }
  $("#budget-text").textContent = text + " to download";
  $("#budget-text").dataset.fits = plan ? String(plan.fits) : "none";
  $("#budget").hidden = false;
}

async function downloadTiles(plan) {
  const bytes = await window.tubanFieldMap.downloadTiles(plan.tiles, (done, total, size) => {
    $("#dl-progress").textContent = `影像 imagery ${done}/${total} · ${fmtBytes(size)}`;
  });
  await put("kv", { zooms: plan.zooms, count: plan.count, estimate_bytes: plan.estimate_bytes, bytes }, "tile_plan");
  state.tilePlan = await get("kv", "tile_plan");
}

async function download() {
  const r = await api("GET", "/api/field/tasks");
  if (!r.ok) return;
  const fc = await r.json();
  for (const f of fc.features) await put("tasks", f);
  const cache = await caches.open("tuban-field-chips-v1");
  for (const f of fc.features) {
    for (const url of Object.values(f.properties.chips || {})) {
      try { const resp = await fetch(url, { credentials: "same-origin" }); if (resp.ok) await cache.put(url, resp); }
      catch (e) { /* chips are optional */ }
    }
  }
  const plan = state.pendingPlan;
  if (plan && plan.fits && plan.tiles.length) await downloadTiles(plan);
  await put("kv", Date.now(), "downloaded_at");
  state.tasks = await all("tasks");
  $("#budget").hidden = true;
  document.body.dataset.downloaded = String(Date.now());
  await renderTasks();
}

async function addPhoto(input) {
  const file = input.files && input.files[0];
  if (!file || !state.current) return;
  const buf = await file.arrayBuffer();
  const fix = state.fix;
  const photo = {
    client_id: uuid(), patch_id: state.current.id, record_client_id: state.draft.client_id, kind: input.dataset.kind,
    size: buf.byteLength, sha256: await sha256(buf), mime: file.type || "image/jpeg", name: file.name,
    lon: fix ? fix.lon : null, lat: fix ? fix.lat : null, accuracy_m: fix ? fix.accuracy : null,
    bearing: state.heading, taken_at: new Date().toISOString(), mock_location: null,
    blob: new Blob([buf], { type: file.type || "image/jpeg" }), status: "saved", upload_id: null, offset: 0,
  };
  await put("photos", photo);
  input.value = "";
  await renderPhotos();
}

async function saveRecord(ev) {
  ev.preventDefault();
  const f = ev.target, t = state.current, p = t.properties;
  const fields = {};
  for (const k of ["QTYPE", "QDCS", "ADDRESS", "PROBLEM", "PROPOSAL", "MEMO"]) fields[k] = f[k].value || null;
  if (state.map && state.map.mode !== "none") state.map.finish();
  const outline = state.map ? state.map.outline() : null;
  const problem = window.tubanFieldMap.outlineProblem(outline, (state.me.policy || {}).outline_max_vertices || 200);
  if (problem) {
    $("#save-msg").className = "msg err";
    $("#save-msg").textContent = `轮廓无效 invalid outline: ${problem}`;
    return;
  }
  // the record this one follows on this device (the server holds it until that one has arrived, D #43)
  const earlier = (await byPatch("records", t.id)).filter((r) => r.client_id !== state.draft.client_id && r.status !== "saved")
    .sort((a, b) => String(a.recorded_at).localeCompare(String(b.recorded_at))).pop();
  const rec = Object.assign(state.draft, {
    outline, after_client_id: earlier ? earlier.client_id : null,
    // following an earlier record not yet applied on the server: its values are this one's base
    ...(earlier && earlier.status !== "done" && earlier.status !== "conflict"
      ? { based_on_version: earlier.based_on_version, base: { ...earlier.fields } }
      : { based_on_version: p.version, base: { QTYPE: p.qtype, QDCS: p.qdcs, ADDRESS: p.address, PROBLEM: p.problem,
                                               PROPOSAL: p.proposal, MEMO: p.memo } }),
    patch_id: t.id, fields,
    responsible_party: f.responsible_party.value || null, outcome: f.outcome.value,
    not_disturbance_reason: f.outcome.value === "not_disturbance" ? f.not_disturbance_reason.value || null : null,
    recorded_at: new Date().toISOString(), status: "queued",
  });
  const photos = await byPatch("photos", t.id);
  for (const ph of photos) if (ph.status === "saved") { ph.status = "queued"; await put("photos", ph); }
  await put("records", rec);
  const pol = state.me.policy;
  const kinds = photos.map((x) => x.kind);
  const missing = pol.required_kinds.filter((k) => !kinds.includes(k));
  $("#save-msg").className = "msg" + (missing.length ? " err" : "");
  $("#save-msg").textContent = "已保存，待同步 saved, queued for sync" +
    (missing.length ? ` · 缺少照片 missing photos: ${missing.join(", ")}` : "");
  await renderPhotos();
  if (navigator.onLine) sync();
}

async function uploadPhoto(ph) {
  ph.status = "uploading";
  await put("photos", ph);
  let r = await api("POST", "/api/field/uploads", {
    client_id: ph.client_id, patch_id: ph.patch_id, size: ph.size, sha256: ph.sha256, mime: ph.mime, kind: ph.kind,
    lon: ph.lon, lat: ph.lat, accuracy_m: ph.accuracy_m, bearing: ph.bearing, taken_at: ph.taken_at,
    mock_location: ph.mock_location, record_client_id: ph.record_client_id });
  if (r.status === 404) { ph.status = "unpermitted"; await put("photos", ph); return; }  // the copy stays here
  if (!r.ok) throw new Error(`upload create ${r.status}`);
  let st = await r.json();
  while (!st.complete) {
    const part = ph.blob.slice(st.offset, st.offset + CHUNK);
    r = await api("PATCH", `/api/field/uploads/${st.upload_id}`, part,
                  { "Upload-Offset": String(st.offset), "Content-Type": "application/offset+octet-stream" });
    if (r.status === 409) {  // stale offset: ask the server where it is
      const h = await fetch(`/api/field/uploads/${st.upload_id}`, { method: "HEAD", credentials: "same-origin" });
      st = { ...st, offset: Number(h.headers.get("Upload-Offset") || 0) };
      continue;
    }
    if (!r.ok) throw new Error(`upload chunk ${r.status}`);
    st = await r.json();
    ph.offset = st.offset;
    await put("photos", ph);
  }
  ph.status = "done";
  ph.photo_id = st.photo_id;
  ph.blob = null;  // acknowledged after a durable commit: the device copy may go
  await put("photos", ph);
}

// the server checks a photo after acknowledging it: fetch the results of those still pending
async function refreshChecks() {
  const waiting = (await all("photos")).filter((p) => p.status === "done" && p.server_checks &&
                                                      p.server_checks.status === "pending");
  for (const pid of new Set(waiting.map((p) => p.patch_id))) {
    const r = await api("GET", `/api/field/patches/${pid}/photos`);
    if (!r.ok) continue;
    const list = await r.json();
    for (const ph of waiting.filter((p) => p.patch_id === pid)) {
      const mine = list.photos.find((x) => x.client_id === ph.client_id);
      if (mine) { ph.server_checks = mine.checks; await put("photos", ph); }
    }
  }
  if (waiting.length && state.current && !$("#detail").hidden) await renderPhotos();
  return waiting.length;
}

async function pending() {
  const busy = (x) => x.status === "queued" || x.status === "uploading";
  return (await all("records")).some(busy) || (await all("photos")).some(busy);
}

async function sync() {
  if (state.syncing || !navigator.onLine) return;
  state.syncing = true;
  try {
    for (const rec of await all("records")) {
      if (rec.status !== "queued") continue;
      const body = {};
      for (const k of ["client_id", "patch_id", "based_on_version", "base", "fields", "responsible_party", "outcome",
                       "not_disturbance_reason", "points", "recorded_at", "outline", "after_client_id"]) {
        if (rec[k] !== undefined) body[k] = rec[k];
      }
      const r = await api("POST", "/api/field/records", body);
      if (r.status === 200 || r.status === 201 || r.status === 202) {
        const res = await r.json();
        rec.status = res.status === "conflict" ? "conflict" : res.status === "held" ? "held" : "done";
        rec.server = res;
      } else if (r.status === 422) {  // refused as invalid: kept here, back to the inspector to fix
        rec.status = "invalid";
        rec.server = await r.json().catch(() => ({}));
      } else if (r.status === 409) {
        rec.status = "conflict";
        rec.server = await r.json();
      } else if (r.status === 404) {  // moved to another county: kept on the server for an admin, and here
        const p = await r.json().catch(() => ({}));
        if (p.code !== "unpermitted") continue;
        rec.status = "unpermitted";
        rec.server = p;
      } else { continue; }
      await put("records", rec);
      const t = await get("tasks", rec.patch_id);
      if (t && rec.server && rec.server.patch_version) {
        const hard = (rec.server.conflict && rec.server.conflict.fields) || {};
        if (rec.status === "done" || rec.server.conflict) {
          for (const [k, v] of Object.entries(rec.fields || {})) if (!(k in hard)) t.properties[k.toLowerCase()] = v;
        }
        t.properties.version = rec.server.patch_version;
        await put("tasks", t);
      }
    }
    for (const ph of await all("photos")) {
      if (ph.status !== "queued" && ph.status !== "uploading") continue;
      await uploadPhoto(ph);
      const r = await api("GET", `/api/field/patches/${ph.patch_id}/photos`);
      if (r.ok) {
        const list = await r.json();
        const mine = list.photos.find((x) => x.client_id === ph.client_id);
        if (mine) { ph.server_checks = mine.checks; await put("photos", ph); }
      }
    }
  } catch (e) {
    console.warn("sync stopped, will resume", e);
  } finally {
    state.syncing = false;
    state.tasks = await all("tasks");
    await renderTasks();
    if (state.current && !$("#detail").hidden) await renderPhotos();
    document.body.dataset.synced = String(Date.now());
  }
}

// ---------- start ----------
async function start() {
  setNet();
  window.addEventListener("online", () => { setNet(); sync(); });
  // a server restart or a dropped connection: keep retrying what is still queued or half uploaded
  setInterval(async () => {
    if (!navigator.onLine || state.syncing || !state.me) return;
    if (await pending()) sync(); else refreshChecks().catch(() => {});
  }, RETRY_MS);
  window.addEventListener("offline", setNet);
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("/field/sw.js", { scope: "/field/" }).catch(() => {});
  if (navigator.geolocation) {
    navigator.geolocation.watchPosition((p) => {
      state.fix = { lon: p.coords.longitude, lat: p.coords.latitude, accuracy: p.coords.accuracy, time: p.timestamp };
      renderTasks(); updateNav();
      if (state.current && state.map && !$("#detail").hidden) state.map.show({ ...state.map.opts, fix: state.fix });
    }, () => {}, { enableHighAccuracy: true, maximumAge: 5000 });
  }
  window.addEventListener("deviceorientationabsolute", (e) => { if (e.alpha != null) state.heading = (360 - e.alpha) % 360; });
  window.addEventListener("deviceorientation", (e) => { if (e.webkitCompassHeading != null) state.heading = e.webkitCompassHeading; });
  $("#login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const r = await api("POST", "/api/session", { username: ev.target.username.value, password: ev.target.password.value });
    if (r.ok) { await boot(); } else { $("#login-msg").className = "msg err"; $("#login-msg").textContent = "登录失败 login failed"; }
  });
  $("#btn-check").addEventListener("click", checkTasks);
  $("#btn-recheck").addEventListener("click", checkTasks);
  $("#btn-download").addEventListener("click", download);
  $("#btn-sync").addEventListener("click", sync);
  $("#btn-back").addEventListener("click", () => { state.current = null; show("home"); renderTasks(); });
  $("#record-form").addEventListener("submit", saveRecord);
  for (const [id, mode] of [["#btn-ol-drag", "drag"], ["#btn-ol-redraw", "redraw"], ["#btn-ol-undo", "undo"],
                            ["#btn-ol-done", "done"], ["#btn-ol-clear", "clear"]]) {
    $(id).addEventListener("click", () => outlineTool(mode));
  }
  $("#btn-layer").addEventListener("click", async () => {
    state.layer = state.layer === "after" ? "before" : "after";
    $("#btn-layer").textContent = state.layer === "after" ? "后时相 after" : "前时相 before";
    if (state.current) drawMap(state.current, await byPatch("photos", state.current.id));
  });
  $("#btn-point").addEventListener("click", () => {
    if (!state.fix) return;
    state.draft.points.push({ lon: state.fix.lon, lat: state.fix.lat, label: $("#pt-label").value });
    $("#pt-label").value = "";
    renderPoints();
  });
  for (const input of document.querySelectorAll("input[type=file]")) input.addEventListener("change", () => addPhoto(input));
  await boot();
}

async function boot() {
  let me = await get("kv", "me");
  if (navigator.onLine) {
    try {
      const r = await api("GET", "/api/field/me");
      if (r.status === 401) { show("login"); return; }
      if (r.ok) { me = await r.json(); await put("kv", me, "me"); }
    } catch (e) { /* offline after all: use the stored profile */ }
  }
  if (!me) { show("login"); return; }
  state.me = me;
  $("#who").textContent = me.username;
  state.tasks = await all("tasks");
  state.tilePlan = await get("kv", "tile_plan");
  show("home");
  await renderTasks();
  document.body.dataset.ready = "1";
  if (navigator.onLine) sync();
}

window.tubanField = { state, sync };  // for tests and debugging
document.addEventListener("DOMContentLoaded", start);
