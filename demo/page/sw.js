// The demo's service worker: keeps the app shell (the page, its scripts, styles and icon, and
// Ward's /bff/client.js) in Cache Storage so the page opens offline. It never caches an API
// answer or anything else under /bff/ (docs/pwa-data.md): personal data goes offline only
// through the vault. Online it always asks the network first, so the page is never stale.
//
// The shell's index.html carries the nonce of the response it came in; offline, each load gets
// a fresh nonce (in the CSP header and on the <script> tags), as Ward gives one online.

const CACHE = 'ward-demo-shell-v1';
const SHELL = [
  '/',
  '/app.js',
  '/pwa.js',
  '/view.js',
  '/style.css',
  '/favicon.svg',
  '/manifest.webmanifest',
  '/bff/client.js',
];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE)
    .then((cache) => cache.addAll(SHELL))
    .then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((key) => key !== CACHE).map((key) => caches.delete(key))))
    .then(() => self.clients.claim()));
});

self.addEventListener('fetch', (event) => {
  const { request } = event;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin) {
    return;
  }
  if (request.mode === 'navigate') {
    // Ward's own pages (login, callback, logout) and the API are never the shell.
    if (!url.pathname.startsWith('/bff/') && !url.pathname.startsWith('/api/')) {
      event.respondWith(networkFirst(request, '/').catch(() => offlineShell()));
    }
    return;
  }
  if (url.search === '' && SHELL.includes(url.pathname)) {
    event.respondWith(networkFirst(request, url.pathname)
      .catch(() => caches.match(url.pathname, { cacheName: CACHE }))
      .then((response) => response || Response.error()));
  }
});

/** The network's answer, kept under `key` when it is a successful same-origin one. */
async function networkFirst(request, key) {
  const response = await fetch(request);
  if (response.ok && response.type === 'basic') {
    const copy = response.clone();
    await caches.open(CACHE).then((cache) => cache.put(key, copy));
  }
  return response;
}

/** The cached page with a fresh CSP nonce, or a network error when none is cached. */
async function offlineShell() {
  const cached = await caches.match('/', { cacheName: CACHE });
  if (!cached) {
    return Response.error();
  }
  const headers = new Headers(cached.headers);
  let html = await cached.text();
  const csp = headers.get('content-security-policy') || '';
  const old = /'nonce-([A-Za-z0-9_-]+)'/.exec(csp)?.[1];
  if (old) {
    const nonce = freshNonce();
    headers.set('content-security-policy', csp.replaceAll(`'nonce-${old}'`, `'nonce-${nonce}'`));
    html = html.replaceAll(`nonce="${old}"`, `nonce="${nonce}"`);
  }
  return new Response(html, { status: 200, statusText: 'OK', headers });
}

/** 128 random bits, base64url, as Ward makes its nonces. */
function freshNonce() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes)).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
}
