// Ward's browser client: an ES module without dependencies. Ward serves this very file at
// GET /bff/client.js (compiled into the binary); the npm package ships it with index.d.ts.
//
//   import { getUser, login, logout, bffFetch, sessionEvents, openVault } from '/bff/client.js';
//
// What the page holds, and where (docs/pwa-data.md):
// - the session: nowhere. It is an HttpOnly cookie the page cannot read;
// - the anti-CSRF token from GET /bff/user: in this module's private scope only (never in
//   localStorage, sessionStorage, a cookie or the DOM), sent only to this origin;
// - offline data: in the vault, an IndexedDB database whose records are AES-GCM ciphertext
//   under a key the page cannot export, wiped at logout and when another user opens it.
// A logout in one tab ends the app in every tab of the origin (a BroadcastChannel message
// that carries no token and no user).

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** The channel tabs of one origin use to tell each other about a logout. */
const TABS_CHANNEL = 'ward-client';
/** The vault's IndexedDB database, its version, and its record format. */
const VAULT_DB = 'ward-vault';
const VAULT_DB_VERSION = 1;
const RECORD_FORMAT = 1;
/** The longest delay a browser timer takes (2^31 - 1 ms); longer waits re-arm. */
const MAX_TIMER_MS = 2_147_483_647;

/** The session's anti-CSRF token; `null` until `/bff/user` has answered 200. */
let csrfToken = null;
/** A `getUser()` call in flight, shared by concurrent callers that only need the token. */
let pendingUser = null;
/** The clock and timers expiry events run on, and how early they warn. */
const settings = {
  warnBeforeSeconds: 120,
  clock: {
    now: () => Date.now(),
    setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
    clearTimeout: (id) => globalThis.clearTimeout(id),
  },
};
/** The next expiry being watched: `{ reason, at, warned, timer }`, or `null`. */
let expiry = null;

/**
 * Where the client reports what happens to the session: `expiring` (a warning
 * `warnBeforeSeconds` before the idle or absolute expiry), `expired`, and `logout` (this tab
 * or another one logged out; when another tab did, the page reloads unless a listener calls
 * `preventDefault()`).
 */
export const sessionEvents = new EventTarget();

/**
 * Changes how expiry events are timed: `warnBeforeSeconds` (default 120), and `clock`
 * (`{ now, setTimeout, clearTimeout }`, milliseconds; tests pass a manual one).
 */
export function configure({ warnBeforeSeconds, clock } = {}) {
  if (warnBeforeSeconds !== undefined) {
    if (!Number.isFinite(warnBeforeSeconds) || warnBeforeSeconds < 0) {
      throw new TypeError('warnBeforeSeconds must be a number of seconds >= 0');
    }
    settings.warnBeforeSeconds = warnBeforeSeconds;
  }
  if (clock !== undefined) {
    settings.clock = clock;
  }
}

/**
 * The logged-in user, or `null` when there is no valid session.
 *
 * Resolves to `{ sub, claims, expiresAt, absoluteExpiresAt }` (times in unix seconds). The
 * response's `csrfToken` is kept here and removed from the returned object. Each call slides
 * the session's idle expiry (Ward does that on `/bff/user`) and re-arms the expiry events.
 * Throws on any other answer (e.g. 503 when Ward's session store is down), so a page never
 * takes an outage for a logout.
 */
export async function getUser() {
  listenToOtherTabs();
  const response = await fetch('/bff/user', {
    credentials: 'same-origin',
    cache: 'no-store',
    headers: { Accept: 'application/json' },
  });
  if (response.status === 401) {
    forgetSession();
    return null;
  }
  if (!response.ok) {
    throw new Error(`GET /bff/user answered ${response.status}`);
  }
  const { csrfToken: token, ...user } = await response.json();
  csrfToken = typeof token === 'string' ? token : null;
  watchExpiry(user);
  return user;
}

/**
 * Sends the window to Ward's login, which returns to `returnUrl` (a local path) afterwards.
 * Defaults to the current page. The page is unloaded; nothing after this call should matter.
 */
export function login(returnUrl = location.pathname + location.search + location.hash) {
  location.assign(`/bff/login?returnUrl=${encodeURIComponent(returnUrl)}`);
}

/**
 * Ends the session: wipes the vault first (even if Ward cannot be reached, no offline data
 * outlives the logout), then `POST /bff/logout` with the CSRF token (Ward also revokes the
 * refresh token at the IdP), tells the other tabs, and sends the window to the `logoutUrl`
 * Ward answers with: the IdP's end-session page, or `/`.
 */
export async function logout() {
  listenToOtherTabs();
  await wipeVault();
  await ensureCsrfToken();
  let response = await postLogout();
  if (response.status === 403) {
    // The session changed since the token was read (e.g. a new login in another tab):
    // fetch the current token once and try again.
    await getUser();
    response = await postLogout();
  }
  if (!response.ok) {
    throw new Error(`POST /bff/logout answered ${response.status}`);
  }
  forgetSession();
  tabsChannel?.postMessage({ type: 'logout' });
  sessionEvents.dispatchEvent(new CustomEvent('logout', { detail: { otherTab: false } }));
  const { logoutUrl } = await response.json();
  location.assign(logoutUrl || '/');
}

/**
 * `fetch` for the app's API routes behind Ward (same arguments, same result).
 *
 * Sends the session cookie (same-origin only) and, on unsafe methods (anything but GET, HEAD,
 * OPTIONS), the `X-CSRF-Token` header, reading the token from `/bff/user` first when it is not
 * known yet. The token is never attached to a request for another origin. A `401` answer
 * (no valid session) starts a login back to the current page; the response is still returned.
 */
export async function bffFetch(input, init = {}) {
  const request = input instanceof Request ? input : null;
  const method = (init.method || (request ? request.method : 'GET')).toUpperCase();
  const headers = new Headers(init.headers || (request ? request.headers : undefined));
  const url = new URL(request ? request.url : String(input), location.href);

  if (!SAFE_METHODS.has(method) && url.origin === location.origin) {
    await ensureCsrfToken();
    if (csrfToken !== null) {
      headers.set('X-CSRF-Token', csrfToken);
    }
  }

  const response = await fetch(input, { ...init, headers, credentials: 'same-origin' });
  if (response.status === 401) {
    login();
  }
  return response;
}

/** Reads the token from `/bff/user` when it is not known; one request for concurrent callers. */
async function ensureCsrfToken() {
  if (csrfToken !== null) {
    return;
  }
  if (pendingUser === null) {
    pendingUser = getUser().finally(() => {
      pendingUser = null;
    });
  }
  await pendingUser;
}

function postLogout() {
  const headers = { Accept: 'application/json' };
  if (csrfToken !== null) {
    headers['X-CSRF-Token'] = csrfToken;
  }
  return fetch('/bff/logout', { method: 'POST', credentials: 'same-origin', headers });
}

/** Drops what this tab knows of the session: the token and the expiry watch. */
function forgetSession() {
  csrfToken = null;
  stopExpiryWatch();
}

// ---- expiry events ---------------------------------------------------------------------------

/** Watches the earlier of the user's idle and absolute expiry (unix seconds). */
function watchExpiry(user) {
  stopExpiryWatch();
  const deadlines = [['idle', user.expiresAt], ['absolute', user.absoluteExpiresAt]]
    .filter(([, at]) => Number.isFinite(at))
    .sort(([, a], [, b]) => a - b);
  if (deadlines.length === 0) {
    return;
  }
  const [reason, at] = deadlines[0];
  expiry = { reason, at, warned: false, timer: null };
  checkExpiry();
}

/** Fires what is due by the clock now, then waits for the next step (warning, then expiry). */
function checkExpiry() {
  const watched = expiry;
  if (watched === null) {
    return;
  }
  const now = settings.clock.now() / 1000;
  const { reason, at } = watched;
  if (!watched.warned && now >= at - settings.warnBeforeSeconds) {
    watched.warned = true;
    if (now < at) {
      const secondsLeft = Math.max(0, Math.round(at - now));
      sessionEvents.dispatchEvent(new CustomEvent('expiring', {
        detail: { reason, expiresAt: at, secondsLeft },
      }));
    }
  }
  if (expiry !== watched) {
    return; // a listener called getUser() and a new watch began
  }
  if (now >= at) {
    forgetSession();
    sessionEvents.dispatchEvent(new CustomEvent('expired', { detail: { reason, expiresAt: at } }));
    return;
  }
  const next = watched.warned ? at : at - settings.warnBeforeSeconds;
  const delay = Math.min(Math.max(0, Math.ceil((next - now) * 1000)), MAX_TIMER_MS);
  watched.timer = settings.clock.setTimeout(checkExpiry, delay);
}

function stopExpiryWatch() {
  if (expiry !== null && expiry.timer !== null) {
    settings.clock.clearTimeout(expiry.timer);
  }
  expiry = null;
}

// ---- other tabs ------------------------------------------------------------------------------

/** This tab's end of the channel; `null` where the platform has no BroadcastChannel. */
let tabsChannel = null;

/** Opens the channel once (at load, and again if a test replaced the platform's). */
function listenToOtherTabs() {
  if (tabsChannel !== null || typeof BroadcastChannel !== 'function') {
    return;
  }
  tabsChannel = new BroadcastChannel(TABS_CHANNEL);
  tabsChannel.unref?.(); // Node: the channel alone does not keep the process alive
  tabsChannel.addEventListener('message', (event) => {
    if (event.data?.type === 'logout') {
      forgetSession();
      const ended = new CustomEvent('logout', { cancelable: true, detail: { otherTab: true } });
      if (sessionEvents.dispatchEvent(ended)) {
        location.reload();
      }
    }
  });
}

listenToOtherTabs();

// ---- the offline vault -----------------------------------------------------------------------

/**
 * Opens the offline vault of user `sub` (from `getUser()`). A vault that belongs to another
 * user is wiped first. The first open generates the key: AES-GCM-256, `extractable: false`,
 * kept in IndexedDB as a `CryptoKey` (the page can use it, never read it).
 *
 * Without `sub` (offline: Ward cannot say who is logged in), opens the vault as it is, or
 * resolves `null` when there is none.
 */
export async function openVault(sub) {
  if (sub !== undefined && (typeof sub !== 'string' || sub === '')) {
    throw new TypeError('openVault takes the user\'s sub (or nothing, offline)');
  }
  let db = await openVaultDb();
  let meta = await idbRequest(db.transaction('meta').objectStore('meta').get('key'));
  if (sub === undefined) {
    if (meta === undefined) {
      db.close();
      return null;
    }
    return new Vault(db, meta.key);
  }
  const owner = await sha256Hex(sub);
  if (meta !== undefined && meta.owner !== owner) {
    db.close();
    await wipeVault();
    db = await openVaultDb();
    meta = undefined;
  }
  if (meta === undefined) {
    meta = await createVaultKey(db, owner);
  }
  return new Vault(db, meta.key);
}

/**
 * Deletes the vault database with every key and record; the client's connections in every tab
 * close for it. A connection that does not close (a page of an older client) only delays the
 * deletion, which stays queued ahead of any later open: the promise does not wait for it, so a
 * logout never hangs on another tab.
 */
export function wipeVault() {
  if (typeof indexedDB === 'undefined') {
    return Promise.resolve();
  }
  return new Promise((resolve, reject) => {
    const request = indexedDB.deleteDatabase(VAULT_DB);
    request.onsuccess = () => resolve();
    request.onerror = () => reject(request.error);
    request.onblocked = () => resolve();
  });
}

/** Records of JSON values, each AES-GCM-encrypted under a fresh 96-bit IV with its name as AAD. */
class Vault {
  #db;
  #key;

  constructor(db, key) {
    this.#db = db;
    this.#key = key;
  }

  /** Encrypts `value` (anything `JSON.stringify` takes) and stores it under `name`. */
  async put(name, value) {
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const plaintext = new TextEncoder().encode(JSON.stringify(value));
    const data = await crypto.subtle.encrypt(
      { name: 'AES-GCM', iv, additionalData: recordAad(name) }, this.#key, plaintext);
    await idbDone(this.#db, 'records', 'readwrite',
      (store) => store.put({ v: RECORD_FORMAT, iv, data }, name));
  }

  /** The value stored under `name`, or `undefined`; throws when the record fails to decrypt. */
  async get(name) {
    const additionalData = recordAad(name);
    const record = await idbRequest(
      this.#db.transaction('records').objectStore('records').get(name));
    if (record === undefined) {
      return undefined;
    }
    if (record.v !== RECORD_FORMAT) {
      throw new Error(`vault record "${name}" has an unknown format`);
    }
    let plaintext;
    try {
      plaintext = await crypto.subtle.decrypt(
        { name: 'AES-GCM', iv: record.iv, additionalData }, this.#key, record.data);
    } catch {
      throw new Error(`vault record "${name}" failed authentication`);
    }
    return JSON.parse(new TextDecoder().decode(plaintext));
  }

  /** Removes the record `name`. */
  async delete(name) {
    await idbDone(this.#db, 'records', 'readwrite', (store) => store.delete(name));
  }

  /** The names of the stored records. */
  async names() {
    const keys = await idbRequest(
      this.#db.transaction('records').objectStore('records').getAllKeys());
    return keys.map(String);
  }

  /** Closes this tab's connection (a wipe elsewhere closes it too). */
  close() {
    this.#db.close();
  }
}

function recordAad(name) {
  if (typeof name !== 'string' || name === '') {
    throw new TypeError('a vault record needs a non-empty string name');
  }
  return new TextEncoder().encode(name);
}

function openVaultDb() {
  const request = indexedDB.open(VAULT_DB, VAULT_DB_VERSION);
  request.onupgradeneeded = () => {
    request.result.createObjectStore('meta');
    request.result.createObjectStore('records');
  };
  return idbRequest(request).then((db) => {
    // A wipe (logout, another user) in any tab deletes the database: let it.
    db.onversionchange = () => db.close();
    return db;
  });
}

/** Generates and stores the vault key; a tab that lost the race uses the winner's key. */
async function createVaultKey(db, owner) {
  const key = await crypto.subtle.generateKey(
    { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
  const meta = { v: RECORD_FORMAT, owner, key };
  try {
    await idbDone(db, ['meta', 'records'], 'readwrite', (tx) => {
      tx.objectStore('records').clear();
      tx.objectStore('meta').add(meta, 'key');
    });
    return meta;
  } catch (error) {
    if (error?.name !== 'ConstraintError') {
      throw error;
    }
    return idbRequest(db.transaction('meta').objectStore('meta').get('key'));
  }
}

async function sha256Hex(text) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

function idbRequest(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/** Runs `work` in a transaction over `stores` and resolves when it has committed. */
function idbDone(db, stores, mode, work) {
  return new Promise((resolve, reject) => {
    const tx = db.transaction(stores, mode);
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
    work(Array.isArray(stores) ? tx : tx.objectStore(stores));
  });
}
