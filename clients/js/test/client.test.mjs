// Tests of the browser client (src/index.js, served as /bff/client.js) under Node's test
// runner: getUser, login, logout and bffFetch against a recording `fetch` and `location`.
// Run: node --test clients/js/test/
//
// Each test loads a fresh copy of the module (its CSRF token is module state), and the storage
// APIs a client must never touch throw when accessed (test/harness.mjs).

import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';

import { ORIGIN, TOKEN, NOW, freshClient as harnessClient, installPlatform } from './harness.mjs';

let world;
let calls;
let navigations;
let routes;
const json = (status, body) => world.json(status, body);
const freshClient = () => harnessClient(world);

beforeEach(() => {
  world = installPlatform();
  ({ calls, navigations, routes } = world);
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
    expiresAt: NOW + 1800,
    absoluteExpiresAt: NOW + 8 * 3600,
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
