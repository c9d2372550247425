// Tests of the browser client (client.js) under Node's test runner, with `fetch` and `location`
// replaced by recorders. Run: node --test crates/ward/src/endpoints/client.test.mjs
//
// Each test loads a fresh copy of the module (its CSRF token is module state), and the storage
// APIs a client must never touch throw when accessed.

import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const SOURCE = readFileSync(new URL('./client.js', import.meta.url), 'utf8');
const ORIGIN = 'https://app.example';
const TOKEN = 'csrf-token-value';
let loads = 0;

/** A fresh instance of client.js (a distinct URL is a distinct module). */
async function freshClient() {
  loads += 1;
  const url = `data:text/javascript,${encodeURIComponent(`${SOURCE}\n// load ${loads}`)}`;
  return import(url);
}

let calls;
let navigations;
let routes;

function json(status, body) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json' },
  });
}

const loggedIn = () => json(200, {
  sub: 'alice',
  claims: { name: 'Test alice' },
  csrfToken: TOKEN,
  expiresAt: 2,
  absoluteExpiresAt: 3,
});

beforeEach(() => {
  calls = [];
  navigations = [];
  routes = { 'GET /bff/user': loggedIn };
  globalThis.location = {
    origin: ORIGIN,
    href: `${ORIGIN}/orders/7?tab=items#top`,
    pathname: '/orders/7',
    search: '?tab=items',
    hash: '#top',
    assign: (url) => navigations.push(url),
  };
  globalThis.fetch = async (input, init = {}) => {
    const request = input instanceof Request
      ? new Request(input, init)
      : new Request(new URL(input, ORIGIN), init);
    const url = new URL(request.url);
    const key = `${request.method} ${url.origin === ORIGIN ? url.pathname : url.href}`;
    calls.push({ key, headers: request.headers, credentials: init.credentials });
    const route = routes[key];
    return route ? route() : json(200, { ok: true });
  };
  for (const name of ['localStorage', 'sessionStorage', 'document']) {
    Object.defineProperty(globalThis, name, {
      configurable: true,
      get() {
        throw new Error(`client.js touched ${name}`);
      },
    });
  }
});

test('getUser returns null without a session', async () => {
  const client = await freshClient();
  routes['GET /bff/user'] = () => json(401, { error: 'unauthenticated' });
  assert.equal(await client.getUser(), null);
});

test('getUser returns the user without the csrf token', async () => {
  const client = await freshClient();
  const user = await client.getUser();
  assert.deepEqual(user, {
    sub: 'alice',
    claims: { name: 'Test alice' },
    expiresAt: 2,
    absoluteExpiresAt: 3,
  });
  assert.equal(calls[0].credentials, 'same-origin');
});

test('getUser throws on a server error instead of reporting a logout', async () => {
  const client = await freshClient();
  routes['GET /bff/user'] = () => json(503, { error: 'store_unavailable' });
  await assert.rejects(client.getUser(), /503/);
});

test('bffFetch sends safe methods without a token and without asking for one', async () => {
  const client = await freshClient();
  await client.bffFetch('/api/hello');
  await client.bffFetch('/api/hello', { method: 'HEAD' });
  assert.deepEqual(calls.map((c) => c.key), ['GET /api/hello', 'HEAD /api/hello']);
  assert.ok(calls.every((c) => !c.headers.has('x-csrf-token')));
  assert.ok(calls.every((c) => c.credentials === 'same-origin'));
});

test('bffFetch reads the token first and adds it to an unsafe request', async () => {
  const client = await freshClient();
  await client.bffFetch('/api/orders', { method: 'post', body: '{}' });
  assert.deepEqual(calls.map((c) => c.key), ['GET /bff/user', 'POST /api/orders']);
  assert.equal(calls[1].headers.get('x-csrf-token'), TOKEN);
});

test('bffFetch keeps the caller headers and reads the method of a Request', async () => {
  const client = await freshClient();
  await client.getUser();
  const request = new Request(`${ORIGIN}/api/orders/7`, {
    method: 'DELETE',
    headers: { 'X-Trace': 'abc' },
  });
  await client.bffFetch(request);
  const sent = calls[1];
  assert.equal(sent.key, 'DELETE /api/orders/7');
  assert.equal(sent.headers.get('x-csrf-token'), TOKEN);
  assert.equal(sent.headers.get('x-trace'), 'abc');
});

test('concurrent unsafe requests share one user request', async () => {
  const client = await freshClient();
  await Promise.all([
    client.bffFetch('/api/a', { method: 'PUT' }),
    client.bffFetch('/api/b', { method: 'PATCH' }),
  ]);
  assert.equal(calls.filter((c) => c.key === 'GET /bff/user').length, 1);
  assert.ok(calls.filter((c) => c.key !== 'GET /bff/user')
    .every((c) => c.headers.get('x-csrf-token') === TOKEN));
});

test('the token is never sent to another origin', async () => {
  const client = await freshClient();
  await client.getUser();
  await client.bffFetch('https://evil.example/collect', { method: 'POST' });
  const sent = calls.find((c) => c.key === 'POST https://evil.example/collect');
  assert.equal(sent.headers.has('x-csrf-token'), false);
});

test('a 401 from the API starts a login back to the current page', async () => {
  const client = await freshClient();
  routes['GET /api/hello'] = () => json(401, { error: 'unauthenticated' });
  const response = await client.bffFetch('/api/hello');
  assert.equal(response.status, 401);
  assert.deepEqual(navigations, [
    `/bff/login?returnUrl=${encodeURIComponent('/orders/7?tab=items#top')}`,
  ]);
});

test('login encodes the return path', async () => {
  const client = await freshClient();
  client.login('/a b?x=1&y=/');
  assert.deepEqual(navigations, ['/bff/login?returnUrl=%2Fa%20b%3Fx%3D1%26y%3D%2F']);
});

test('logout posts with the token and follows logoutUrl', async () => {
  const client = await freshClient();
  routes['POST /bff/logout'] = () => json(200, { logoutUrl: 'https://idp.example/end?state=s' });
  await client.logout();
  const post = calls.find((c) => c.key === 'POST /bff/logout');
  assert.equal(post.headers.get('x-csrf-token'), TOKEN);
  assert.equal(post.credentials, 'same-origin');
  assert.deepEqual(navigations, ['https://idp.example/end?state=s']);
});

test('logout retries once with a fresh token after a 403', async () => {
  const client = await freshClient();
  let posts = 0;
  routes['POST /bff/logout'] = () => {
    posts += 1;
    return posts === 1 ? json(403, { error: 'csrf_failed' }) : json(200, { logoutUrl: '/' });
  };
  await client.logout();
  assert.equal(posts, 2);
  assert.equal(calls.filter((c) => c.key === 'GET /bff/user').length, 2);
  assert.deepEqual(navigations, ['/']);
});

test('logout without a session still succeeds', async () => {
  const client = await freshClient();
  routes['GET /bff/user'] = () => json(401, { error: 'unauthenticated' });
  routes['POST /bff/logout'] = () => json(200, { logoutUrl: '/' });
  await client.logout();
  const post = calls.find((c) => c.key === 'POST /bff/logout');
  assert.equal(post.headers.has('x-csrf-token'), false);
  assert.deepEqual(navigations, ['/']);
});
