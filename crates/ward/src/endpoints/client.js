// Ward's browser client, served by Ward at GET /bff/client.js (an ES module, no dependencies).
//
//   import { getUser, login, logout, bffFetch } from '/bff/client.js';
//
// The session lives in an HttpOnly cookie the page cannot read. What the page does hold is the
// anti-CSRF token from GET /bff/user: it is kept in this module's private scope only (never in
// localStorage, sessionStorage, a cookie or the DOM), so another script can neither read it from
// storage nor find it in the page, and it is sent only to this origin.

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The session's anti-CSRF token; `null` until `/bff/user` has answered 200. */
let csrfToken = null;

/** A `getUser()` call in flight, shared by concurrent callers that only need the token. */
let pendingUser = null;

/**
 * The logged-in user, or `null` when there is no valid session.
 *
 * Resolves to `{ sub, claims, expiresAt, absoluteExpiresAt }` (times in unix seconds). The
 * response's `csrfToken` is kept here and removed from the returned object. Each call slides
 * the session's idle expiry (Ward does that on `/bff/user`). Throws on any other answer
 * (e.g. 503 when Ward's session store is down), so a page never takes an outage for a logout.
 */
export async function getUser() {
  const response = await fetch('/bff/user', {
    credentials: 'same-origin',
    cache: 'no-store',
    headers: { Accept: 'application/json' },
  });
  if (response.status === 401) {
    csrfToken = null;
    return null;
  }
  if (!response.ok) {
    throw new Error(`GET /bff/user answered ${response.status}`);
  }
  const { csrfToken: token, ...user } = await response.json();
  csrfToken = typeof token === 'string' ? token : null;
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
 * Ends the session at Ward (which also revokes the refresh token at the IdP), then sends the
 * window to the `logoutUrl` Ward answers with: the IdP's end-session page, or `/`.
 */
export async function logout() {
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
  csrfToken = null;
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
