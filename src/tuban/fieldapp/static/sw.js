// Service worker of the field app: the shell and image chips from the cache; the API always from the network.
const SHELL = "tuban-field-shell-v2";
const CHIPS = "tuban-field-chips-v1";
const TILES = "tuban-field-tiles-v1";
const FILES = ["/field/", "/field/app.js", "/field/map.js", "/field/app.css", "/field/manifest.webmanifest",
               "/field/icon.svg"];
const TILE_PATH = /^\/rounds\/\d+\/tiles\/(before|after)\/\d+\/\d+\/\d+\.png$/;

// a downloaded imagery tile, marked so the page can tell it came from the offline cache
async function cachedTile(request) {
  const cache = await caches.open(TILES);
  const hit = await cache.match(request.url);
  if (!hit) return fetch(request);
  const headers = new Headers(hit.headers);
  headers.set("X-Tuban-Cache", "hit");
  return new Response(await hit.blob(), { status: hit.status, statusText: hit.statusText, headers });
}

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL).then((c) => c.addAll(FILES)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys().then((keys) => Promise.all(
    keys.filter((k) => k !== SHELL && k !== CHIPS && k !== TILES).map((k) => caches.delete(k)))).then(() => self.clients.claim()));
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  if (TILE_PATH.test(url.pathname)) {
    event.respondWith(cachedTile(event.request));
    return;
  }
  if (url.pathname.includes("/chips/")) {
    event.respondWith(caches.open(CHIPS).then(async (c) => (await c.match(event.request)) || fetch(event.request)));
    return;
  }
  if (url.pathname.startsWith("/field")) {
    // network first (fresh code when online), the cached shell when offline
    event.respondWith(fetch(event.request).then((r) => {
      if (r.ok) { const copy = r.clone(); caches.open(SHELL).then((c) => c.put(event.request, copy)); }
      return r;
    }).catch(async () => (await caches.match(event.request)) || caches.match("/field/")));
  }
});
