// The page of e2e/password-login.spec.mjs, served by Ward's `[static]` (a nonced module
// script): a login form that posts the credentials to `POST /bff/login/password` (SPEC §2) as
// JSON with `X-CSRF-Token` (any value before a session exists), then reads the session with
// the browser client's `getUser()` and calls a proxied API route with `bffFetch`.

import { bffFetch, getUser } from '/bff/client.js';

const element = (id) => document.getElementById(id);

async function logIn(form) {
  const fields = new FormData(form);
  const response = await fetch('/bff/login/password', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': 'password-login' },
    body: JSON.stringify({ username: fields.get('username'), password: fields.get('password') }),
  });
  form.elements.password.value = '';
  if (!response.ok) {
    const { error } = await response.json();
    element('error').textContent = error;
    document.body.dataset.state = 'refused';
    return;
  }
  element('error').textContent = '';
  const user = await getUser();
  element('user').textContent = user.sub;
  const api = await bffFetch('/api/orders');
  element('api').textContent = `API ${api.status}`;
  document.body.dataset.state = 'logged-in';
}

element('login').addEventListener('submit', (event) => {
  event.preventDefault();
  delete document.body.dataset.state;
  logIn(event.target).catch((error) => {
    element('error').textContent = `failed: ${error.message}`;
    document.body.dataset.state = 'failed';
  });
});
document.body.dataset.state = 'ready';
