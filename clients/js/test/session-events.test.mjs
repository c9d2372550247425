// Tests of the client's session events: the expiry warnings on a manual clock (no sleeping),
// and the logout that reaches every tab over BroadcastChannel. Run: node --test clients/js/test/

import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';

import { NOW, TOKEN, freshClient, installPlatform, loggedIn } from './harness.mjs';

let world;

beforeEach(() => {
  world = installPlatform();
});

/** Records each event `client` reports, as `name:reason` or `name:otherTab`. */
function recordEvents(client) {
  const seen = [];
  for (const name of ['expiring', 'expired', 'logout']) {
    client.sessionEvents.addEventListener(name, (event) => {
      seen.push({ name, ...event.detail, at: world.clock.now() / 1000 });
    });
  }
  return seen;
}

test('expiring fires warnBeforeSeconds before the idle expiry, expired at it', async () => {
  const client = await freshClient(world, { warnBeforeSeconds: 60 });
  const seen = recordEvents(client);
  await client.getUser();
  world.clock.advance((1800 - 61) * 1000);
  assert.deepEqual(seen, [], 'nothing before the warning time');
  world.clock.advance(1000);
  assert.deepEqual(seen, [
    { name: 'expiring', reason: 'idle', expiresAt: NOW + 1800, secondsLeft: 60, at: NOW + 1740 },
  ]);
  world.clock.advance(60 * 1000);
  assert.deepEqual(seen.map((e) => `${e.name}:${e.reason}@${e.at - NOW}`),
    ['expiring:idle@1740', 'expired:idle@1800']);
  assert.equal(world.clock.pending(), 0, 'no timer left after the expiry');
});

test('the absolute expiry is watched when it comes first', async () => {
  world.routes['GET /bff/user'] = loggedIn({ expiresAt: NOW + 1800, absoluteExpiresAt: NOW + 600 });
  const client = await freshClient(world, { warnBeforeSeconds: 120 });
  const seen = recordEvents(client);
  await client.getUser();
  world.clock.advance(600 * 1000);
  assert.deepEqual(seen.map((e) => `${e.name}:${e.reason}@${e.at - NOW}`),
    ['expiring:absolute@480', 'expired:absolute@600']);
});

test('getUser slides the watch: the old deadline fires nothing', async () => {
  const client = await freshClient(world, { warnBeforeSeconds: 60 });
  const seen = recordEvents(client);
  await client.getUser();
  world.clock.advance(1000 * 1000);
  world.routes['GET /bff/user'] = loggedIn({ expiresAt: NOW + 1000 + 1800 });
  await client.getUser();
  world.clock.advance(1000 * 1000); // past the first deadline (NOW + 1800)
  assert.deepEqual(seen, []);
  world.clock.advance(800 * 1000);
  assert.deepEqual(seen.map((e) => `${e.name}@${e.at - NOW}`), ['expiring@2740', 'expired@2800']);
});

test('a session already inside the warning window warns at once', async () => {
  world.routes['GET /bff/user'] = loggedIn({ expiresAt: NOW + 30 });
  const client = await freshClient(world, { warnBeforeSeconds: 120 });
  const seen = recordEvents(client);
  await client.getUser();
  assert.deepEqual(seen.map((e) => `${e.name}:${e.secondsLeft}`), ['expiring:30']);
});

test('after expiry the token is forgotten: the next unsafe call asks Ward again', async () => {
  const client = await freshClient(world, { warnBeforeSeconds: 60 });
  await client.getUser();
  world.clock.advance(1800 * 1000);
  await client.bffFetch('/api/orders', { method: 'POST' });
  assert.deepEqual(world.calls.map((c) => c.key), ['GET /bff/user', 'GET /bff/user', 'POST /api/orders']);
});

test('a 401 from /bff/user stops the watch', async () => {
  const client = await freshClient(world);
  const seen = recordEvents(client);
  await client.getUser();
  world.routes['GET /bff/user'] = () => world.json(401, { error: 'unauthenticated' });
  assert.equal(await client.getUser(), null);
  assert.equal(world.clock.pending(), 0);
  world.clock.advance(9 * 3600 * 1000);
  assert.deepEqual(seen, []);
});

test('configure refuses a negative warning time', async () => {
  const client = await freshClient(world);
  assert.throws(() => client.configure({ warnBeforeSeconds: -1 }), /warnBeforeSeconds/);
});

test('logout in one tab ends the session in the others, which reload', async () => {
  const tabA = await freshClient(world);
  const tabB = await freshClient(world);
  const seenA = recordEvents(tabA);
  const seenB = recordEvents(tabB);
  await tabB.getUser();
  world.routes['POST /bff/logout'] = () => world.json(200, { logoutUrl: '/' });
  await tabA.logout();
  assert.deepEqual(world.bus.sent, [{ type: 'logout' }], 'the message holds no token, no user');
  assert.deepEqual(seenA.map((e) => `${e.name}:${e.otherTab}`), ['logout:false']);
  assert.deepEqual(seenB.map((e) => `${e.name}:${e.otherTab}`), ['logout:true']);
  assert.equal(world.reloads, 1, 'the other tab reloads');
  assert.equal(world.clock.pending(), 0, 'the other tab stopped watching its expiry');

  // Tab B forgot its token: an unsafe call reads /bff/user again before sending.
  world.calls.length = 0;
  await tabB.bffFetch('/api/orders', { method: 'POST' });
  assert.deepEqual(world.calls.map((c) => c.key), ['GET /bff/user', 'POST /api/orders']);
  assert.equal(world.calls[1].headers.get('x-csrf-token'), TOKEN);
});

test('a tab that handles the logout itself keeps its page', async () => {
  const tabA = await freshClient(world);
  const tabB = await freshClient(world);
  tabB.sessionEvents.addEventListener('logout', (event) => event.preventDefault());
  world.routes['POST /bff/logout'] = () => world.json(200, { logoutUrl: '/' });
  await tabA.logout();
  assert.equal(world.reloads, 0);
});

test('a failed logout tells no other tab', async () => {
  const tabA = await freshClient(world);
  await freshClient(world);
  world.routes['POST /bff/logout'] = () => world.json(503, { error: 'store_unavailable' });
  await assert.rejects(tabA.logout(), /503/);
  assert.deepEqual(world.bus.sent, []);
  assert.equal(world.reloads, 0);
});
