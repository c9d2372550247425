// The demo page: Ward's "pull" flow (SPEC §1) with the browser client Ward serves.
// It renders only with textContent (never innerHTML), so claims cannot inject markup.

import { getUser, login, logout, bffFetch } from '/bff/client.js';

const element = (id) => document.getElementById(id);

function showOnly(sectionId) {
  for (const id of ['logged-out', 'logged-in']) {
    element(id).hidden = id !== sectionId;
  }
}

function showError(text) {
  element('error').textContent = text;
  element('error').hidden = false;
}

function formatTime(unixSeconds) {
  return typeof unixSeconds === 'number' ? new Date(unixSeconds * 1000).toLocaleString() : '–';
}

// After a failed login Ward returns to `[login] error_path` with `?bff_error=<IdP error code>`.
// Show it once and drop it from the address bar, so a reload or a later login is clean.
function takeLoginError() {
  const params = new URLSearchParams(location.search);
  const code = params.get('bff_error');
  if (code === null) {
    return;
  }
  showError(`The login did not complete (${code}).`);
  params.delete('bff_error');
  const query = params.toString();
  history.replaceState(null, '', location.pathname + (query ? `?${query}` : '') + location.hash);
}

function renderUser(user) {
  const claims = user.claims || {};
  element('user-name').textContent = claims.name || user.sub;
  element('user-sub').textContent = user.sub;
  element('user-email').textContent = claims.email || '–';
  element('session-idle').textContent = formatTime(user.expiresAt);
  element('session-absolute').textContent = formatTime(user.absoluteExpiresAt);
  element('status').textContent = 'You are logged in through Ward.';
  showOnly('logged-in');
}

async function callApi(method, path = '/api/hello') {
  const output = element('api-result');
  output.textContent = `${method} ${path} …`;
  try {
    // bffFetch sends the session cookie, adds X-CSRF-Token to the POST, and turns a 401
    // (session gone) into a new login.
    const response = await bffFetch(path, {
      method,
      headers: { Accept: 'application/json' },
    });
    const text = await response.text();
    let body = text;
    try {
      body = JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      // Not JSON: show it as it came.
    }
    output.textContent = `${response.status} ${response.statusText}\n${body}`;
  } catch (error) {
    output.textContent = `The request failed: ${error.message}`;
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
  element('login').addEventListener('click', () => login(location.pathname));
  element('call-api').addEventListener('click', (event) =>
    whileDisabled(event.currentTarget, () => callApi('GET')));
  element('post-api').addEventListener('click', (event) =>
    whileDisabled(event.currentTarget, () => callApi('POST')));
  // A composite: Ward calls /api/hello and /api/time at once and answers one trimmed object.
  element('call-composite').addEventListener('click', (event) =>
    whileDisabled(event.currentTarget, () => callApi('GET', '/api/dashboard')));
  element('logout').addEventListener('click', (event) =>
    whileDisabled(event.currentTarget, async () => {
      try {
        await logout();
      } catch (error) {
        showError(`Logout failed: ${error.message}`);
      }
    }));
}

async function start() {
  wireButtons();
  takeLoginError();
  let user;
  try {
    user = await getUser();
  } catch (error) {
    element('status').textContent = 'Ward could not tell whether you are logged in.';
    showError(error.message);
    return;
  }
  if (user === null) {
    element('status').textContent = 'You are not logged in.';
    showOnly('logged-out');
  } else {
    renderUser(user);
  }
}

start();
