// Countersign's service worker (scope: the app's directory, .../app/).
//
// - Keeps the app shell (HTML, JS, CSS, manifest, icons) for offline use, network first so that an
//   update reaches users on their next load. It never touches device API calls or anything outside
//   the app's directory: those always go to the network and are never cached.
// - Shows Web Push notifications. A push carries no secrets and no decision material, only
//   {id, kind, request_id, title, text, url}; the app fetches the request over the signed device API
//   and the user decides there, never from the notification.

const CACHE = 'countersign-shell-v1';
const SHELL = [
  './',
  'app.js',
  'app.css',
  'lib/api.js',
  'lib/b64.js',
  'lib/display.js',
  'lib/dom.js',
  'lib/jcs.js',
  'lib/jws.js',
  'lib/store.js',
  'lib/webauthn.js',
  'manifest.webmanifest',
  'icons/icon.svg',
  'icons/icon-192.png',
  'icons/icon-512.png',
];
const SCOPE = new URL(self.registration.scope);
const SHELL_PATHS = new Set(SHELL.map((p) => new URL(p, SCOPE).pathname));
SHELL_PATHS.add(new URL('index.html', SCOPE).pathname);

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await cache.addAll(SHELL.map((p) => new Request(new URL(p, SCOPE), { cache: 'no-cache' })));
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith('countersign-') && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== SCOPE.origin || !SHELL_PATHS.has(url.pathname)) return; // network only
  event.respondWith(networkFirst(req, url));
});

async function networkFirst(req, url) {
  const key = url.pathname.endsWith('/index.html') ? new URL('./', SCOPE).href : url.origin + url.pathname;
  const cache = await caches.open(CACHE);
  try {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), req.mode === 'navigate' ? 4000 : 8000);
    const res = await fetch(req, { signal: controller.signal });
    clearTimeout(timer);
    if (res.ok && res.type === 'basic') await cache.put(key, res.clone());
    return res;
  } catch (e) {
    const cached = await cache.match(key);
    if (cached) return cached;
    throw e;
  }
}

// --- Push

self.addEventListener('push', (event) => {
  let msg = null;
  try {
    msg = event.data ? event.data.json() : null;
  } catch (e) {
    msg = null;
  }
  event.waitUntil(onPush(msg));
});

function text(v, max) {
  // One line, no control or bidi characters, bounded: the OS shows it outside our page.
  const s = typeof v === 'string' ? v.replace(/[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/g, '')
    .replace(/[\u0000-\u001F\u007F-\u009F]/g, ' ').trim() : '';
  return s.length > max ? s.slice(0, max - 1) + '…' : s;
}

/** The app URL to open for a request: the payload's, if it is inside our scope. */
function appURL(url, requestID) {
  try {
    const u = new URL(url, SCOPE);
    if (u.origin === SCOPE.origin && u.pathname === SCOPE.pathname) return u.href;
  } catch (e) { /* fall through */ }
  return new URL(requestID ? `./#/requests/${encodeURIComponent(requestID)}` : './', SCOPE).href;
}

async function tellClients(message) {
  const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  for (const c of windows) c.postMessage(message);
}

async function onPush(msg) {
  const requestID = msg && typeof msg.request_id === 'string' ? msg.request_id : '';
  const kind = msg && typeof msg.kind === 'string' ? msg.kind : '';
  await tellClients({ type: 'refresh', kind, request_id: requestID });
  if (kind === 'closed') {
    // Decided, cancelled or expired: take the prompt away everywhere.
    const shown = await self.registration.getNotifications(requestID ? { tag: requestID } : undefined);
    for (const n of shown) if (!requestID || n.tag === requestID) n.close();
    return;
  }
  const reminder = kind === 'reminder';
  const title = text(msg && msg.title, 80) || (reminder ? 'Reminder: approval needed' : 'Approval requested');
  const body = text(msg && msg.text, 160) || 'Open Countersign to review the request.';
  await self.registration.showNotification(title, {
    body,
    tag: requestID || 'countersign', // a later push for the same request replaces this one
    renotify: true,
    requireInteraction: true,
    icon: new URL('icons/icon-192.png', SCOPE).href,
    timestamp: Date.now(),
    data: { url: appURL(msg && msg.url, requestID), request_id: requestID },
  });
}

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const data = event.notification.data || {};
  const url = appURL(data.url, data.request_id);
  event.waitUntil(openApp(url));
});

async function openApp(url) {
  const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const app = windows.find((c) => new URL(c.url).pathname === SCOPE.pathname);
  if (app) {
    app.postMessage({ type: 'open', url });
    try {
      await app.focus();
    } catch (e) { /* focusing needs the click's user activation; the message still opens it */ }
    return;
  }
  await self.clients.openWindow(url);
}
