/* global self, caches, clients */
/**
 * Tideline's app-shell service worker: after the first visit the storefront
 * loads with no network, and the data comes from the IndexedDB replica.
 *
 * - `/assets/*` (Vite's content-hashed files): cache first; a miss goes to the
 *   network and is kept.
 * - Navigations and the index: network first, so a new build shows up at once
 *   online; offline, the cached index.html.
 * - Everything else (Socket.IO, /auth, /admin, /query, /cluster, other
 *   origins, non-GET) is not intercepted: the sync engine and the APIs must
 *   see the real network, offline included.
 *
 * On install it caches the index and every asset the index names. When a
 * navigation brings a different index (a new build), its assets are cached
 * and the old build's are dropped.
 */
const CACHE = 'tideline-shell-v1';
const INDEX = '/index.html';
const PASS_THROUGH = /^\/(socket\.io|auth|admin|query|cluster|healthz)(\/|$)/;

const assetsOf = (html) => [...new Set([...html.matchAll(/(?:src|href)="(\/assets\/[^"?#]+)"/g)].map((m) => m[1]))];

/** Caches `res` as the index, with the assets it names; drops assets no longer named. */
async function keepIndex(res) {
  const cache = await caches.open(CACHE);
  const html = await res.clone().text();
  const previous = await cache.match(INDEX);
  if (previous && (await previous.text()) === html) return;
  const assets = assetsOf(html);
  await cache.addAll(assets);
  await cache.put(INDEX, res);
  const keep = new Set(assets);
  for (const req of await cache.keys()) {
    const path = new URL(req.url).pathname;
    if (path.startsWith('/assets/') && !keep.has(path)) await cache.delete(req);
  }
}

const isHtml = (res) => res.ok && (res.headers.get('content-type') ?? '').includes('text/html');

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const res = await fetch(INDEX, { cache: 'no-store' });
      if (!isHtml(res)) throw new Error(`cannot cache the app shell: GET ${INDEX} answered ${res.status}`);
      await keepIndex(res);
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name);
      await clients.claim();
    })(),
  );
});

async function networkFirstIndex(event) {
  try {
    const res = await fetch(event.request);
    if (isHtml(res)) event.waitUntil(keepIndex(res.clone()).catch(() => undefined));
    return res;
  } catch (err) {
    const cached = await caches.match(INDEX);
    if (cached) return cached;
    throw err;
  }
}

async function cacheFirstAsset(request) {
  const cached = await caches.match(request);
  if (cached) return cached;
  const res = await fetch(request);
  // The server answers unknown paths with index.html; never keep that under an asset's name.
  if (res.ok && !isHtml(res)) {
    const cache = await caches.open(CACHE);
    await cache.put(request, res.clone());
  }
  return res;
}

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || PASS_THROUGH.test(url.pathname)) return;
  if (request.mode === 'navigate' || url.pathname === '/' || url.pathname === INDEX) {
    event.respondWith(networkFirstIndex(event));
  } else if (url.pathname.startsWith('/assets/')) {
    event.respondWith(cacheFirstAsset(request));
  }
});
