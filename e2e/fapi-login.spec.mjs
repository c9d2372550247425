// A FAPI 2.0 login in Chromium: Ward serves e2e/site/ with the IdP in its FAPI 2.0
// configuration behind it (PAR required, private_key_jwt). The page's `login()` goes to
// /bff/login, which pushes the authorization request, so the browser's navigation to the IdP
// carries only `client_id` and `request_uri`; the IdP's login and consent pages; the callback;
// `getUser()`; a proxied POST through `bffFetch` (with `X-CSRF-Token`; a plain fetch without it
// is 403); the logout, confirmed at the IdP's end-session page, back to a logged-out page.
//
// Everything the browser sees is collected — every request URL and header, every response
// header and body, its cookies (all origins), each origin's localStorage and sessionStorage —
// and written to $E2E_HANDOFF_DIR/seen.json, where the Rust test looks for the session's tokens.
// Once logged in, the script writes the session cookie (name=value) to
// $E2E_HANDOFF_DIR/cookie, prints `PAUSE`, and waits for a line on stdin: the Rust test reads
// the session's tokens from Ward's store meanwhile.
//
//   WARD_URL=http://localhost:<port> E2E_IDP_URL=http://127.0.0.1:<port> \
//     E2E_HANDOFF_DIR=<dir> [E2E_COOKIE=__Host-ward] node e2e/fapi-login.spec.mjs
//
// crates/ward/tests/browser_fapi.rs starts the stack and runs this script. Nothing printed holds
// a token, cookie or CSRF value.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { USER, WARD_URL, isWard, runInChromium, step } from './harness.mjs';

const IDP_URL = new URL(required('E2E_IDP_URL')).origin;
const HANDOFF_DIR = required('E2E_HANDOFF_DIR');
const COOKIE = process.env.E2E_COOKIE || '__Host-ward';

function required(name) {
  const value = process.env[name];
  assert.ok(value, `${name} is required`);
  return value;
}

const isIdp = (url) => new URL(url).origin === IDP_URL;

/** Statuses whose responses have no body. */
const NO_BODY = new Set([204, 304]);

/**
 * Collects what the browser sees in `context`: URLs, headers, bodies, cookies, web storage.
 *
 * A response's body is read through playwright when it has finished loading, which is too late
 * for a fetch whose page then navigates away (the logout's JSON): an init script also hands the
 * text of every `fetch()` response to the collector before the page's own script gets it.
 * A body read neither way fails the run.
 */
async function watch(context) {
  const seen = { urls: [], headers: [], bodies: [], cookies: [], storage: [] };
  const reads = [];
  const lost = [];
  const fetched = new Set();
  await context.exposeBinding('__e2eFetched', (_source, url, text) => {
    fetched.add(url);
    seen.bodies.push(text);
  });
  await context.addInitScript(() => {
    const original = window.fetch;
    window.fetch = async (...args) => {
      const response = await original(...args);
      await window.__e2eFetched(response.url, await response.clone().text());
      return response;
    };
  });
  context.on('request', (request) => {
    seen.urls.push(request.url());
    const post = request.postData();
    if (post !== null) {
      seen.bodies.push(post);
    }
    reads.push(request.allHeaders().then((headers) => seen.headers.push(JSON.stringify(headers))));
  });
  context.on('response', (response) => {
    reads.push(response.allHeaders().then((headers) => seen.headers.push(JSON.stringify(headers))));
    const status = response.status();
    if (!NO_BODY.has(status) && (status < 300 || status >= 400)) {
      reads.push(response.body().then(
        (body) => seen.bodies.push(body.toString('utf8')),
        () => lost.push(response.url()),
      ));
    }
  });
  return {
    seen,
    /** Adds `page`'s web storage and readable cookies (whichever origin it is on). */
    async storageOf(page) {
      seen.storage.push(await page.evaluate(() => {
        const dump = (storage) => {
          const values = [];
          for (let i = 0; i < storage.length; i += 1) {
            values.push(storage.key(i), storage.getItem(storage.key(i)));
          }
          return values;
        };
        return JSON.stringify({
          origin: location.origin,
          local: dump(localStorage),
          session: dump(sessionStorage),
          cookie: document.cookie,
        });
      }));
    },
    async cookiesOf() {
      seen.cookies.push(JSON.stringify(await context.cookies()));
    },
    /**
     * Waits for every pending read (`page` leaves its document first: a body its script never
     * read finishes loading only then); returns how many bodies only the init script read.
     */
    async settle(page) {
      await page.goto('about:blank');
      while (reads.length > 0) {
        await Promise.allSettled(reads.splice(0));
      }
      const unread = lost.filter((url) => !fetched.has(url));
      assert.deepEqual(unread, [], 'response bodies the collector could not read');
      return lost.length;
    },
  };
}

/** The browser's navigation to the IdP's authorization endpoint carries only the PAR handle. */
function assertOnlyThePushedRequestsHandle(navigations) {
  const authorize = navigations.filter((url) => isIdp(url.href) && url.pathname === '/auth');
  assert.equal(authorize.length, 1, `one authorization request: ${authorize.length}`);
  const names = [...authorize[0].searchParams.keys()];
  assert.deepEqual(names, ['client_id', 'request_uri'], `the authorization request's parameters: ${names}`);
  assert.match(authorize[0].searchParams.get('request_uri'), /^urn:ietf:params:oauth:request_uri:/);
  for (const url of navigations) {
    for (const name of ['code_challenge', 'state', 'nonce', 'redirect_uri', 'scope', 'response_type']) {
      assert.ok(!(isIdp(url.href) && url.searchParams.has(name)), `${name} in a navigation to the IdP`);
    }
  }
  console.log(`the IdP's authorization request carried only ${names.join(', ')}`);
}

async function logIn(page, watcher) {
  step('the page, logged out; ward.login() → /bff/login → the IdP');
  const navigations = [];
  const callbacks = [];
  page.on('request', (request) => {
    if (request.isNavigationRequest()) {
      navigations.push(new URL(request.url()));
    }
  });
  page.on('response', (response) => {
    const url = new URL(response.url());
    if (isWard(url.href) && url.pathname === '/bff/callback') {
      callbacks.push({ status: response.status(), location: response.headers().location });
    }
  });
  await page.goto(`${WARD_URL}/`);
  await page.locator('body[data-ready="logged-out"]').waitFor({ state: 'attached' });
  await page.evaluate(() => window.ward.login('/'));
  await page.waitForURL((url) => isIdp(url.href) && url.pathname.startsWith('/interaction/'));
  assertOnlyThePushedRequestsHandle(navigations);

  step(`log in as ${USER} and consent at the IdP`);
  await page.fill('input[name="login"]', USER);
  await page.fill('input[name="password"]', 'x');
  await page.click('button[type="submit"]');
  await page.locator('input[name="prompt"][value="consent"]').waitFor({ state: 'attached' });
  await watcher.storageOf(page);
  await page.click('button[type="submit"]');
  await page.waitForURL((url) => isWard(url.href) && url.pathname === '/');
  await page.locator('body[data-ready="logged-in"]').waitFor({ state: 'attached' });
  assert.equal(callbacks.length, 1, 'one callback');
  assert.equal(page.url(), `${WARD_URL}/`, 'the landing URL carries no code or state');
  console.log(`callback answered ${callbacks[0].status} to ${callbacks[0].location}`);
  assert.deepEqual(callbacks[0], { status: 302, location: '/' });
  assert.equal(await page.locator('#status').textContent(), `Logged in as ${USER}.`);
  const user = await page.evaluate(() => window.ward.getUser());
  assert.equal(user.sub, USER, 'getUser() shows the user');
}

/** Hands the session cookie to the Rust test and waits until it has read the session. */
async function pause(context) {
  const session = (await context.cookies(WARD_URL)).find((c) => c.name === COOKIE);
  assert.ok(session, `a ${COOKIE} cookie`);
  assert.ok(session.httpOnly, 'the session cookie is HttpOnly');
  await writeFile(join(HANDOFF_DIR, 'cookie'), `${session.name}=${session.value}`, { mode: 0o600 });
  const input = createInterface({ input: process.stdin });
  const line = once(input, 'line');
  console.log('PAUSE: logged in; the test reads the session');
  await line;
  input.close();
}

async function callTheApi(page) {
  step('a proxied POST through bffFetch (X-CSRF-Token), and one without the token');
  const sent = [];
  page.on('request', (request) => {
    if (isWard(request.url()) && new URL(request.url()).pathname.startsWith('/api/')) {
      sent.push(request.headers()['x-csrf-token'] !== undefined);
    }
  });
  const statuses = await page.evaluate(async () => {
    const withToken = await window.ward.bffFetch('/api/status/204', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"hello":"fapi"}',
    });
    const without = await fetch('/api/status/204', { method: 'POST', credentials: 'same-origin' });
    return [withToken.status, without.status];
  });
  assert.deepEqual(statuses, [204, 403]);
  assert.deepEqual(sent, [true, false], 'the first call carried X-CSRF-Token, the second none');
  console.log(`POST /api/status/204 with X-CSRF-Token answered ${statuses[0]}; without it ${statuses[1]}`);
}

async function logOut(page, context, watcher) {
  step('ward.logout(): POST /bff/logout, then the IdP\'s end-session page');
  const logouts = [];
  page.on('request', (request) => {
    if (isWard(request.url()) && new URL(request.url()).pathname === '/bff/logout') {
      logouts.push(`${request.method()} ${request.headers()['x-csrf-token'] === undefined ? 'without' : 'with'} X-CSRF-Token`);
    }
  });
  await page.evaluate(() => window.ward.logout());
  await page.waitForURL((url) => isIdp(url.href) && url.pathname.startsWith('/session/end'));
  await watcher.storageOf(page);
  step('confirm at the IdP: back to Ward, logged out');
  await page.click('button[name="logout"]');
  await page.waitForURL((url) => isWard(url.href) && url.pathname === '/');
  await page.locator('body[data-ready="logged-out"]').waitFor({ state: 'attached' });
  const cookies = await context.cookies(WARD_URL);
  assert.ok(!cookies.some((c) => c.name === COOKIE), 'the session cookie is gone');
  const status = await page.evaluate(async () => (await fetch('/bff/user')).status);
  assert.equal(status, 401, 'GET /bff/user after the logout');
  assert.deepEqual(logouts, ['POST with X-CSRF-Token'], 'the logout request');
  console.log(`after logout: no session cookie, /bff/user ${status}`);
}

await runInChromium(async (context, newPage) => {
  const watcher = await watch(context);
  const page = await newPage();
  await logIn(page, watcher);
  await watcher.storageOf(page);
  await watcher.cookiesOf();
  await pause(context);
  await callTheApi(page);
  await logOut(page, context, watcher);
  await watcher.storageOf(page);
  await watcher.cookiesOf();
  const late = await watcher.settle(page);
  const { seen } = watcher;
  console.log(`seen: ${seen.urls.length} URLs, ${seen.headers.length} header sets, `
    + `${seen.bodies.length} bodies (${late} read only from fetch()), ${seen.storage.length} storage dumps`);
  await writeFile(join(HANDOFF_DIR, 'seen.json'), JSON.stringify(seen), { mode: 0o600 });
});
