// The demo page: Ward's "pull" flow (SPEC §1) with the browser client Ward serves, as an
// installable PWA that works offline (pwa.js, sw.js), showing what Ward does: the session
// cookie's attributes, the bearer the API received (masked), a POST refused without the CSRF
// token, the session's expiry, and an address bar without the IdP's parameters.
// Its personal data goes offline only through the client's encrypted vault (docs/pwa-data.md).

import { getUser, login, logout, bffFetch, sessionEvents, openVault } from '/bff/client.js';
import { registerServiceWorker } from '/pwa.js';
import {
  element, formatTime, receivedBearer, renderOffline, renderUser, showError, showOnly,
} from '/view.js';

/** The signed-in user's vault (records `profile` and `lastCall`), or null. */
let vault = null;

// Ward's callback redirects to the page without `code` or `state`; the return from the IdP's
// logout page carries the `state` Ward sent there, a failed login `?bff_error=<IdP error code>`.
// Show an error once and drop all of them from the address bar (and from history).
function cleanAddressBar() {
  const params = new URLSearchParams(location.search);
  const code = params.get('bff_error');
  if (code !== null) {
    showError(`The login did not complete (${code}).`);
  }
  const names = ['bff_error', 'state', 'code', 'iss', 'session_state'].filter((n) => params.has(n));
  if (names.length === 0) {
    return;
  }
  names.forEach((name) => params.delete(name));
  const query = params.toString();
  history.replaceState(null, '', location.pathname + (query ? `?${query}` : '') + location.hash);
  element('address').textContent =
    `Removed ${names.join(', ')} from the address bar, which now reads ${location.href}`;
  element('address').hidden = false;
}

async function keepInVault(name, value) {
  try {
    await vault?.put(name, value);
  } catch (error) {
    showError(`The vault could not save ${name}: ${error.message}`);
  }
}

async function callApi(method, path = '/api/hello') {
  const output = element('api-result');
  output.textContent = `${method} ${path} …`;
  try {
    // bffFetch sends the session cookie, adds X-CSRF-Token to the POST, and turns a 401
    // (session gone) into a new login.
    const response = await bffFetch(path, { method, headers: { Accept: 'application/json' } });
    const text = await response.text();
    let body = text;
    try {
      const json = JSON.parse(text);
      element('bearer').textContent = receivedBearer(json);
      body = JSON.stringify(json, null, 2);
      if (method === 'GET' && response.ok) {
        const bearer = element('bearer').textContent;
        await keepInVault('lastCall', { method, status: response.status, at: Date.now(), bearer });
      }
    } catch {
      // Not JSON: show it as it came.
    }
    output.textContent = `${response.status} ${response.statusText}\n${body}`;
  } catch (error) {
    output.textContent = `The request failed: ${error.message}`;
  }
}

// A plain fetch, not bffFetch: the session cookie goes along, the X-CSRF-Token header does not.
async function postWithoutCsrf() {
  const output = element('csrf-result');
  output.textContent = 'POST /api/hello without X-CSRF-Token …';
  try {
    const response = await fetch('/api/hello', { method: 'POST', body: '{}' });
    const body = await response.json().catch(() => ({}));
    output.textContent = `${response.status} ${body.error || response.statusText}: Ward refused it; the API never saw it`;
  } catch (error) {
    output.textContent = `The request failed: ${error.message}`;
  }
}

function watchExpiry() {
  const warning = element('expiry-warning');
  sessionEvents.addEventListener('expiring', (event) => {
    const { reason, expiresAt, secondsLeft } = event.detail;
    const what = reason === 'idle' ? 'idles out' : 'reaches its absolute end';
    element('expiry-text').textContent =
      `Your session ${what} in ${secondsLeft} s (${formatTime(expiresAt)}).`;
    element('stay').hidden = reason !== 'idle';
    warning.dataset.reason = reason;
    warning.hidden = false;
  });
  sessionEvents.addEventListener('expired', () => {
    element('expiry-text').textContent = 'Your session has expired: log in again.';
    element('stay').hidden = true;
    warning.hidden = false;
  });
}

async function stayLoggedIn() {
  element('expiry-warning').hidden = true;
  const user = await getUser(); // Ward slides the idle expiry on /bff/user
  if (user === null) {
    showOnly('logged-out');
  } else {
    renderUser(user);
  }
}

async function whileDisabled(button, action) {
  button.disabled = true;
  try {
    await action();
  } finally {
    button.disabled = false;
  }
}

function wireButtons() {
  const on = (id, action) => element(id).addEventListener('click', (event) =>
    whileDisabled(event.currentTarget, action));
  element('login').addEventListener('click', () => login(location.pathname));
  on('call-api', () => callApi('GET'));
  on('post-api', () => callApi('POST'));
  on('post-no-csrf', postWithoutCsrf);
  // A composite: Ward calls /api/hello and /api/time at once and answers one trimmed object.
  on('call-composite', () => callApi('GET', '/api/dashboard'));
  on('stay', () => stayLoggedIn().catch((error) => showError(error.message)));
  on('logout', async () => {
    vault = null; // logout() wipes it
    try {
      await logout();
    } catch (error) {
      showError(`Logout failed: ${error.message}`);
    }
  });
}

async function showOnline(user) {
  renderUser(user);
  vault = await openVault(user.sub);
  const claims = user.claims || {};
  await keepInVault('profile', {
    sub: user.sub, name: claims.name || user.sub, email: claims.email || null, savedAt: Date.now(),
  });
  document.body.dataset.vault = 'saved';
}

async function showOffline() {
  const offlineVault = await openVault(); // without a sub: the vault as it is, or null
  if (offlineVault === null) {
    renderOffline(null, null);
    return;
  }
  try {
    renderOffline(await offlineVault.get('profile'), await offlineVault.get('lastCall'));
  } finally {
    offlineVault.close();
  }
}

async function start() {
  wireButtons();
  watchExpiry();
  cleanAddressBar();
  registerServiceWorker((text, controlling) => {
    element('pwa-status').textContent = text;
    document.body.dataset.sw = controlling ? 'controlling' : 'installing';
  }).catch((error) => showError(`No offline mode: ${error.message}`));
  let user;
  try {
    user = await getUser();
  } catch (error) {
    if (error instanceof TypeError || !navigator.onLine) {
      await showOffline(); // no answer at all: offline
    } else {
      element('status').textContent = 'Ward could not tell whether you are logged in.';
      showError(error.message);
    }
    return;
  }
  if (user === null) {
    element('status').textContent = 'You are not logged in.';
    showOnly('logged-out');
  } else {
    await showOnline(user);
  }
}

start().catch((error) => showError(error.message));
