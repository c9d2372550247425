// Tampered authorization responses at Ward's callback, in Chromium, with the IdP in its FAPI 2.0
// configuration (PAR required, private_key_jwt). Each case logs in at the IdP in a fresh browser
// context and holds the IdP's redirect back to /bff/callback (DevTools' Fetch interception
// answers it in place of Ward), then navigates to the callback URL as the case changes it:
//
// - `iss` with a trailing slash, and `iss` removed (RFC 9207 §2.4; FAPI 2.0 §5.3.2.2-7): a
//   redirect to `[login] error_path?bff_error=login_failed`, no code exchange, no session; the
//   transaction is spent, so the genuine response fails after it;
// - `state` changed (RFC 6749 §10.12): 400 `login_failed`, no code exchange, no session; the
//   genuine response then completes the login (a forgery cannot spend another's login);
// - the completed callback replayed (RFC 9700 §4.2.4): 400, no code exchange, the session kept;
//   replayed in another browser: 400, no session;
// - another browser's code under this browser's `state` and `iss` (code injection, RFC 9700
//   §4.5): Ward exchanges it with its own PKCE verifier, the IdP refuses it, the error page, no
//   session.
//
// The IdP's counters (GET $E2E_IDP_URL/__test/stats, from node) show whether the code reached
// the token endpoint.
//
//   WARD_URL=http://localhost:<port> E2E_IDP_URL=http://127.0.0.1:<port> \
//     node e2e/fapi-callbacks.spec.mjs
//
// crates/ward/tests/browser_fapi.rs starts the stack and runs this script. Nothing printed holds
// a code, state, token or cookie value.

import assert from 'node:assert/strict';

import { STEP_TIMEOUT_MS, USER, WARD_URL, isWard, runInChromium, step } from './harness.mjs';

const IDP_URL = new URL(required('E2E_IDP_URL')).origin;
const COOKIE = '__Host-ward';

function required(name) {
  const value = process.env[name];
  assert.ok(value, `${name} is required`);
  return value;
}

const isIdp = (url) => new URL(url).origin === IDP_URL;
const isCallback = (url) => isWard(url.href) && url.pathname === '/bff/callback';

async function tokenRequests() {
  const response = await fetch(`${IDP_URL}/__test/stats`);
  assert.equal(response.status, 200, 'the IdP\'s test hooks');
  return (await response.json()).tokenRequests;
}

/**
 * A fresh context: another browser, as far as Ward can tell. (Without the harness's route that
 * keeps other hosts out: a route would put Playwright's own interception in front of the hold
 * below. Ward's site and the IdP's pages load nothing from other hosts.)
 */
async function freshBrowser(browser) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  return { context, page };
}

/**
 * Logs in at the IdP from /bff/login and holds the IdP's redirect back: Ward never sees it.
 * Returns the callback URL the IdP sent the browser to. (Playwright's routes let redirected
 * requests through, so the hold is DevTools' Fetch interception, which pauses them too.)
 */
async function heldAuthorizationResponse({ context, page }) {
  const devtools = await context.newCDPSession(page);
  let held = null;
  devtools.on('Fetch.requestPaused', (event) => {
    held = event.request.url;
    devtools.send('Fetch.fulfillRequest', {
      requestId: event.requestId,
      responseCode: 200,
      responseHeaders: [{ name: 'content-type', value: 'text/plain' }],
      body: Buffer.from('held by the test').toString('base64'),
    }).catch((error) => console.error(`the hold failed: ${error.message}`));
  });
  await devtools.send('Fetch.enable', { patterns: [{ urlPattern: `${WARD_URL}/bff/callback*` }] });
  await page.goto(`${WARD_URL}/bff/login?returnUrl=/`);
  await page.waitForURL((url) => isIdp(url.href) && url.pathname.startsWith('/interaction/'));
  await page.fill('input[name="login"]', USER);
  await page.fill('input[name="password"]', 'x');
  await page.click('button[type="submit"]');
  await page.locator('input[name="prompt"][value="consent"]').waitFor({ state: 'attached' });
  await page.click('button[type="submit"]');
  await page.waitForURL(isCallback);
  await page.getByText('held by the test').waitFor();
  await devtools.send('Fetch.disable');
  await devtools.detach();
  assert.ok(held !== null, 'the IdP redirected back');
  const url = new URL(held);
  for (const name of ['code', 'state', 'iss']) {
    assert.ok(url.searchParams.get(name), `the authorization response has ${name}`);
  }
  assert.equal(url.searchParams.get('iss'), IDP_URL, 'the IdP names itself as iss');
  return url;
}

/**
 * Navigates to `callback` (a top-level navigation, as the IdP's redirect would be); returns
 * what Ward's callback answered: its status, `Location` and, for a 400, the JSON `error`.
 */
async function deliver({ page }, callback) {
  const answered = page.waitForResponse((response) => isCallback(new URL(response.url())));
  await page.goto(callback.href);
  const response = await answered;
  const outcome = { status: response.status(), location: response.headers().location };
  if (outcome.status === 400) {
    outcome.error = (await response.json()).error;
  }
  return outcome;
}

/** The browser holds no session cookie and Ward knows no session for it. */
async function assertNoSession({ context, page }, what) {
  const cookies = await context.cookies(WARD_URL);
  assert.ok(!cookies.some((c) => c.name === COOKIE), `${what}: no session cookie`);
  await page.goto(`${WARD_URL}/`);
  await page.locator('body[data-ready="logged-out"]').waitFor({ state: 'attached' });
}

async function assertTheErrorPage({ page }, outcome, what) {
  assert.deepEqual(outcome, { status: 302, location: '/?bff_error=login_failed' }, what);
  const landed = new URL(page.url());
  assert.equal(`${landed.pathname}${landed.search}`, '/?bff_error=login_failed', `${what}: the error page`);
  await page.locator('body[data-ready="logged-out"]').waitFor({ state: 'attached' });
  assert.match(await page.title(), /Ward runtime fixture/, `${what}: the site's page`);
}

function changed(url, name, value) {
  const copy = new URL(url);
  if (value === undefined) {
    copy.searchParams.delete(name);
  } else {
    copy.searchParams.set(name, value);
  }
  return copy;
}

async function aChangedIss(browser, what, iss) {
  step(what);
  const victim = await freshBrowser(browser);
  const genuine = await heldAuthorizationResponse(victim);
  const before = await tokenRequests();
  const outcome = await deliver(victim, changed(genuine, 'iss', iss));
  await assertTheErrorPage(victim, outcome, what);
  const exchanges = (await tokenRequests()) - before;
  assert.equal(exchanges, 0, `${what}: the code was not exchanged`);
  await assertNoSession(victim, what);
  const then = await deliver(victim, genuine);
  assert.deepEqual(then, { status: 400, location: undefined, error: 'login_failed' }, `${what}: the genuine response after it`);
  assert.equal(await tokenRequests(), before, `${what}: the genuine code was not exchanged either`);
  await assertNoSession(victim, `${what}, then genuine`);
  console.log(`${what}: 302 to ${outcome.location}, ${exchanges} token requests, no session; `
    + `the genuine response then: ${then.status}`);
  await victim.context.close();
}

/** Returns the browser, logged in, with its completed callback URL. */
async function aChangedState(browser) {
  const what = 'state changed';
  step(what);
  const victim = await freshBrowser(browser);
  const genuine = await heldAuthorizationResponse(victim);
  const before = await tokenRequests();
  const forged = changed(genuine, 'state', `${genuine.searchParams.get('state')}x`);
  const outcome = await deliver(victim, forged);
  assert.deepEqual(outcome, { status: 400, location: undefined, error: 'login_failed' }, what);
  const exchanges = (await tokenRequests()) - before;
  assert.equal(exchanges, 0, `${what}: the code was not exchanged`);
  await assertNoSession(victim, what);

  const then = await deliver(victim, genuine);
  assert.deepEqual(then, { status: 302, location: '/' }, `${what}: the genuine response after it`);
  await victim.page.locator('body[data-ready="logged-in"]').waitFor({ state: 'attached' });
  assert.equal(await tokenRequests(), before + 1, `${what}: the genuine code was exchanged`);
  console.log(`${what}: ${outcome.status} ${outcome.error}, ${exchanges} token requests, no session; `
    + `the genuine response then: ${then.status} to ${then.location}`);
  return { victim, completed: genuine };
}

async function aReplayedCallback(browser, { victim, completed }) {
  let what = 'replayed callback';
  step(what);
  const before = await tokenRequests();
  const outcome = await deliver(victim, completed);
  assert.deepEqual(outcome, { status: 400, location: undefined, error: 'login_failed' }, what);
  assert.equal(await tokenRequests(), before, `${what}: no second exchange`);
  const status = await victim.page.evaluate(async () => (await fetch('/bff/user')).status);
  assert.equal(status, 200, `${what}: the browser's session is untouched`);
  console.log(`${what}: ${outcome.status} ${outcome.error}, 0 token requests, the session kept`);

  what = 'replayed callback in another browser';
  step(what);
  const other = await freshBrowser(browser);
  const replayed = await deliver(other, completed);
  assert.deepEqual(replayed, { status: 400, location: undefined, error: 'login_failed' }, what);
  assert.equal(await tokenRequests(), before, `${what}: no second exchange`);
  await assertNoSession(other, what);
  console.log(`${what}: ${replayed.status} ${replayed.error}, 0 token requests, no session`);
  await other.context.close();
  await victim.context.close();
}

async function anInjectedCode(browser) {
  const what = 'another browser\'s code under this state';
  step(what);
  const attacker = await freshBrowser(browser);
  const stolen = await heldAuthorizationResponse(attacker);
  const victim = await freshBrowser(browser);
  const genuine = await heldAuthorizationResponse(victim);
  const before = await tokenRequests();
  const outcome = await deliver(victim, changed(genuine, 'code', stolen.searchParams.get('code')));
  await assertTheErrorPage(victim, outcome, what);
  const exchanges = (await tokenRequests()) - before;
  assert.equal(exchanges, 1, `${what}: Ward tried the code once, with its own verifier`);
  await assertNoSession(victim, what);
  console.log(`${what}: 302 to ${outcome.location}, ${exchanges} token request, no session`);
  await attacker.context.close();
  await victim.context.close();
}

await runInChromium(async (context) => {
  const browser = context.browser();
  await aChangedIss(browser, 'iss with a trailing slash', `${IDP_URL}/`);
  await aChangedIss(browser, 'iss removed', undefined);
  await aReplayedCallback(browser, await aChangedState(browser));
  await anInjectedCode(browser);
});
