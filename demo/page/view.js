// What the demo page shows, rendered with textContent only (never innerHTML), so claims and
// API answers cannot inject markup.

export const element = (id) => document.getElementById(id);

/**
 * The session cookie as Ward sets it with the demo's settings: `[session] cookie_name` and
 * `same_site` at their defaults (SPEC §3: `__Host-ward=<id>; Path=/; Secure; HttpOnly;
 * SameSite=Strict; Max-Age=<absolute remaining>`). A script cannot read an HttpOnly cookie or
 * a Set-Cookie header, so these are stated, not read; e2e/demo.spec.mjs checks them against
 * the browser's cookie jar.
 */
const WARD_COOKIE = { name: '__Host-ward', sameSite: 'Strict', path: '/' };

export function showOnly(sectionId) {
  for (const id of ['logged-out', 'logged-in', 'offline']) {
    element(id).hidden = id !== sectionId;
  }
  document.body.dataset.mode = sectionId;
}

export function showError(text) {
  element('error').textContent = text;
  element('error').hidden = false;
}

export function formatTime(unixSeconds) {
  return typeof unixSeconds === 'number' ? new Date(unixSeconds * 1000).toLocaleString() : '–';
}

/** `Bearer abcd••••wxyz (N characters)`: enough to recognise a token, not to use it. */
export function maskBearer(header) {
  const match = /^Bearer\s+(\S+)$/i.exec(header || '');
  if (!match) {
    return header ? '(not a bearer token)' : '(none)';
  }
  const token = match[1];
  const shown = token.length >= 16 ? `${token.slice(0, 4)}••••${token.slice(-4)}` : '••••';
  return `Bearer ${shown} (${token.length} characters)`;
}

/**
 * The bearer the API received, masked: demo/api.mjs masks it itself (`bearer`); an upstream
 * that echoes the request's headers (the tests' echo API) sends it whole, and it is masked
 * here, also in the JSON the page prints.
 */
export function receivedBearer(body) {
  if (typeof body?.bearer === 'string') {
    return body.bearer;
  }
  const authorization = body?.headers?.authorization;
  if (Array.isArray(authorization) && authorization.length > 0) {
    const masked = maskBearer(authorization[0]);
    body.headers.authorization = [masked];
    return masked;
  }
  return '(none)';
}

export function renderUser(user) {
  const claims = user.claims || {};
  element('user-name').textContent = claims.name || user.sub;
  element('user-sub').textContent = user.sub;
  element('user-email').textContent = claims.email || '–';
  element('session-idle').textContent = formatTime(user.expiresAt);
  element('session-absolute').textContent = formatTime(user.absoluteExpiresAt);
  element('status').textContent = 'You are logged in through Ward.';
  renderCookie(user);
  showOnly('logged-in');
}

/** The cookie's attributes; HttpOnly checked here: Ward answered, yet no script sees the cookie. */
function renderCookie(user) {
  const visible = document.cookie.split(';').map((c) => c.trim().split('=')[0]).filter(Boolean);
  const hidden = !visible.includes(WARD_COOKIE.name);
  const maxAge = Math.max(0, Math.round(user.absoluteExpiresAt - Date.now() / 1000));
  const facts = {
    'cookie-name': WARD_COOKIE.name,
    'cookie-prefix': WARD_COOKIE.name.startsWith('__Host-')
      ? 'yes: the browser accepts it only with Secure, Path=/ and no Domain (host-only)'
      : 'no',
    'cookie-httponly': hidden
      ? `yes: Ward recognised this browser, yet document.cookie shows ${
        visible.length ? visible.join(', ') : 'no cookie'}`
      : 'NO: a script can read it',
    'cookie-secure': 'yes (sent only over HTTPS, or to localhost)',
    'cookie-samesite': `${WARD_COOKIE.sameSite}: not sent with requests from other sites`,
    'cookie-path': WARD_COOKIE.path,
    'cookie-max-age': `${maxAge} s: until the session's absolute end (${formatTime(user.absoluteExpiresAt)})`,
  };
  for (const [id, text] of Object.entries(facts)) {
    element(id).textContent = text;
  }
  element('cookie').dataset.httponly = String(hidden);
}

/** The page as the vault keeps it offline: `profile` and `lastCall`, both may be null. */
export function renderOffline(profile, lastCall) {
  element('status').textContent = profile
    ? 'Offline mode: Ward cannot be asked who you are.'
    : 'Offline mode: Ward cannot be asked who you are, and the vault holds nothing.';
  element('offline-name').textContent = profile ? profile.name : '–';
  element('offline-sub').textContent = profile ? profile.sub : '–';
  element('offline-saved').textContent = profile ? new Date(profile.savedAt).toLocaleString() : '–';
  element('offline-call').textContent = lastCall
    ? `${lastCall.method} /api/hello → ${lastCall.status} at ${new Date(lastCall.at).toLocaleString()}`
    : 'none yet';
  element('offline-bearer').textContent = lastCall ? lastCall.bearer : '–';
  showOnly('offline');
}
