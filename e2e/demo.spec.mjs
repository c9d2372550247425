// Ward's demo page in a real browser: headless Chromium (Debian's `chromium`, driven by
// playwright-core) against a running Ward that serves demo/page/ with an `/api` route (token
// "user") to an upstream answering any path with a JSON description of the request.
//
//   WARD_URL=http://localhost:<port> node e2e/demo.spec.mjs
//
// Env: WARD_URL (required: Ward's public origin), CHROMIUM_PATH (default /usr/bin/chromium),
// E2E_ARTIFACTS_DIR (screenshots; default the OS temp dir), E2E_USER (default alice).
//
// crates/ward/tests/browser.rs starts the stack, runs this script and then checks what the
// upstream received (the bearer token on GET /api/hello, no cross-site or token-less POST).
// Exit status 0 means every check passed. Nothing printed holds a token, cookie or CSRF value.

import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

import { chromium } from 'playwright-core';

const WARD_URL = new URL(required('WARD_URL')).origin;
const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ARTIFACTS_DIR = process.env.E2E_ARTIFACTS_DIR || os.tmpdir();
const USER = process.env.E2E_USER || 'alice';
const COOKIE = '__Host-ward';
/** Hosts the browser may reach: Ward (localhost), the IdP and the cross-site page (127.0.0.1). */
const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1']);
/** Longest wait for one navigation, element or page state. */
const STEP_TIMEOUT_MS = 20_000;
/** The launch flags measured on this kind of machine (DEPENDENCY-NOTES §4). */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`demo.spec.mjs: ${name} is required (e.g. ${name}=http://localhost:8080)`);
    process.exit(2);
  }
  return value;
}

function step(text) {
  console.log(`step: ${text}`);
}

/** Bearer tokens the echo upstream reflects must not reach this script's output. */
function redact(text) {
  return String(text).replace(/Bearer\s+[^\s"\\]+/gi, 'Bearer <redacted>');
}

const isWard = (url) => new URL(url).origin === WARD_URL;

// ---- console errors ----------------------------------------------------------------------------

/**
 * Console errors the browser reports, with the page they happened on. Those on Ward's pages and
 * on the test's own cross-site page count; the IdP's dev pages (which want a web font and a
 * favicon) are not under test. Some are expected: the browser logs every 4xx answer of a fetch
 * ("Failed to load resource"), and the checks below provoke a few on purpose. Those are declared
 * with `expectConsoleError` before they happen; anything else fails the run.
 */
const consoleErrors = [];
const expectedConsoleErrors = [];

function watchConsole(page) {
  page.on('console', (message) => {
    if (message.type() === 'error') {
      consoleErrors.push({ text: message.text(), source: message.location().url, page: page.url() });
    }
  });
  page.on('pageerror', (error) => {
    consoleErrors.push({ text: `uncaught: ${error.message}`, source: '', page: page.url() });
  });
}

/** Allows one console error whose text matches `pattern` and whose source URL ends in `path`. */
function expectConsoleError(pattern, sourcePath) {
  expectedConsoleErrors.push({ pattern, sourcePath, seen: false });
}

function unexpectedConsoleErrors(checkedOrigins) {
  return consoleErrors.filter((error) => {
    if (!checkedOrigins.has(new URL(error.page).origin)) {
      return false;
    }
    const expected = expectedConsoleErrors.find((e) =>
      !e.seen && e.pattern.test(error.text) && error.source.endsWith(e.sourcePath));
    if (expected) {
      expected.seen = true;
      return false;
    }
    return true;
  });
}

// ---- the cross-site page -----------------------------------------------------------------------

/**
 * Serves a page on http://127.0.0.1:<port>: another site than Ward's http://localhost:<port>
 * (a different host is a different site), with a form that POSTs to Ward's API. No script: the
 * test drives its fetches from the page's own context.
 */
async function startCrossSite() {
  const form = `${WARD_URL}/api/cross-site-form`;
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>Another site</title></head>
<body><h1>Another site</h1>
<form id="attack" method="post" action="${form}">
<input name="amount" value="1000"><button type="submit">Send</button></form>
<p><a id="peek" href="${WARD_URL}/bff/user">Who is logged in at Ward?</a></p></body></html>`;
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(html);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return { server, url: `http://127.0.0.1:${server.address().port}/` };
}

// ---- page helpers ------------------------------------------------------------------------------

/** `GET /bff/user` from the page (same origin, with its cookie): `{ status, body }`. */
function fetchUser(page) {
  return page.evaluate(async () => {
    const response = await fetch('/bff/user', { cache: 'no-store' });
    return { status: response.status, body: await response.json() };
  });
}

/** The status line and JSON the demo page printed in `#api-result` after an API call. */
async function apiResult(page, method) {
  const result = page.locator('#api-result');
  await page.waitForFunction(() => {
    const text = document.getElementById('api-result').textContent;
    return /^\d{3} /.test(text) || text.startsWith('The request failed');
  });
  const text = await result.textContent();
  const newline = text.indexOf('\n');
  const statusLine = newline < 0 ? text : text.slice(0, newline);
  assert.match(statusLine, /^200 /, `${method} /api/hello: the page shows "${redact(statusLine)}"`);
  let body;
  try {
    body = JSON.parse(text.slice(newline + 1));
  } catch {
    assert.fail(`${method} /api/hello: the page shows no JSON body`);
  }
  return body;
}

/** The echo upstream's view of the headers Ward sent it. */
function checkForwardedHeaders(body, method) {
  assert.equal(body.method, method, 'the upstream saw the method');
  assert.equal(body.path, '/api/hello', 'the upstream saw the path');
  const headers = body.headers || {};
  const authorization = headers.authorization || [];
  assert.equal(authorization.length, 1, `${method}: exactly one Authorization header upstream`);
  assert.ok(/^Bearer \S{8,}$/.test(authorization[0]), `${method}: the upstream got a bearer token`);
  assert.ok(!(headers.cookie || []).some((c) => c.includes(COOKIE)),
    `${method}: Ward's session cookie never reaches the upstream`);
  assert.equal(headers['x-csrf-token'], undefined, `${method}: the CSRF header never reaches the upstream`);
}

/** Saves a screenshot, with any bearer token the echo upstream reflected blanked out first. */
async function screenshot(page, name) {
  await page.evaluate(() => {
    const result = document.getElementById('api-result');
    if (result) {
      result.textContent = result.textContent.replace(/Bearer\s+[^\s"\\]+/gi, 'Bearer <redacted>');
    }
  }).catch(() => {});
  const file = path.join(ARTIFACTS_DIR, name);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot: ${file}`);
  return file;
}

// ---- the checks --------------------------------------------------------------------------------

async function loggedOutPage(page) {
  step(`open ${WARD_URL}/`);
  expectConsoleError(/status of 401/, '/bff/user'); // the page asks who is logged in: nobody
  const response = await page.goto(`${WARD_URL}/`);
  assert.equal(response.status(), 200, 'GET / answers 200');

  const csp = response.headers()['content-security-policy'] || '';
  const nonce = /script-src [^;]*'nonce-([A-Za-z0-9_-]{16,})'/.exec(csp)?.[1];
  assert.ok(nonce, `GET / carries a CSP with a script nonce: "${csp}"`);
  assert.ok(!/'unsafe-inline'|'unsafe-eval'/.test(csp), 'the CSP allows no inline or eval script');
  const scriptNonce = await page.evaluate(() => document.querySelector('script[src="/app.js"]')?.nonce);
  assert.equal(scriptNonce, nonce, 'the page script carries the CSP nonce');

  await page.getByRole('button', { name: 'Log in', exact: true }).waitFor({ state: 'visible' });
  assert.equal(await page.locator('#logged-in').isHidden(), true, 'no user section while logged out');
  assert.equal(await page.locator('#status').textContent(), 'You are not logged in.');
  assert.equal((await page.locator('#user-name').textContent()).trim(), '', 'no user name shown');
  return nonce;
}

async function logIn(page) {
  step('click "Log in": to the IdP login page');
  await page.getByRole('button', { name: 'Log in', exact: true }).click();
  await page.waitForURL((url) => !isWard(url.href) && url.pathname.startsWith('/interaction/'));
  await page.fill('input[name="login"]', USER);
  await page.fill('input[name="password"]', 'x');
  step('submit the login form: to the consent page');
  await page.click('button[type="submit"]');
  await page.locator('input[name="prompt"][value="consent"]').waitFor({ state: 'attached' });
  step('consent: back to Ward');
  await page.click('button[type="submit"]');
  await page.waitForURL((url) => isWard(url.href) && url.pathname === '/');
  await page.locator('#logged-in').waitFor({ state: 'visible' });
  const name = (await page.locator('#user-name').textContent()).trim();
  assert.ok([`Test ${USER}`, USER].includes(name), `the page greets the user, not "${name}"`);
  assert.equal(await page.locator('#user-sub').textContent(), USER, 'the page shows the subject');
  assert.equal(await page.locator('#logged-out').isHidden(), true, 'the login section is hidden');
  assert.equal(page.url(), `${WARD_URL}/`, 'the login returns to the page it started on');
}

async function sessionStaysOutOfScriptReach(page, context) {
  step('the session cookie is HttpOnly, Secure, SameSite=Strict, host-only');
  const visible = await page.evaluate(() => document.cookie);
  assert.ok(!visible.includes(COOKIE), 'document.cookie does not show the session cookie');
  const cookies = await context.cookies(WARD_URL);
  const session = cookies.find((c) => c.name === COOKIE);
  assert.ok(session, `the browser holds ${COOKIE} (it has: ${cookies.map((c) => c.name).join(', ')})`);
  assert.equal(session.httpOnly, true, 'HttpOnly');
  assert.equal(session.secure, true, 'Secure');
  assert.equal(session.sameSite, 'Strict', 'SameSite=Strict');
  assert.equal(session.path, '/', 'Path=/');
  assert.equal(session.domain, new URL(WARD_URL).hostname, 'host-only (no Domain attribute)');

  step('the CSRF token is in no storage, cookie or DOM');
  const user = await fetchUser(page);
  assert.equal(user.status, 200, 'GET /bff/user answers 200 when logged in');
  assert.equal(user.body.sub, USER);
  const token = user.body.csrfToken;
  assert.ok(typeof token === 'string' && token.length >= 32, '/bff/user carries a CSRF token');
  const places = await page.evaluate(() => {
    const dump = (storage) => {
      const values = [];
      for (let i = 0; i < storage.length; i += 1) {
        const key = storage.key(i);
        values.push(key, storage.getItem(key));
      }
      return values.join('\n');
    };
    return {
      localStorage: dump(localStorage),
      sessionStorage: dump(sessionStorage),
      cookie: document.cookie,
      dom: document.documentElement.outerHTML,
      url: location.href,
    };
  });
  for (const [where, text] of Object.entries(places)) {
    assert.ok(!text.includes(token), `the CSRF token is not in ${where}`);
  }
  for (const cookie of cookies) {
    assert.ok(!cookie.value.includes(token), `the CSRF token is not in cookie ${cookie.name}`);
  }
}

async function callApi(page) {
  step('click "Call API": GET /api/hello with the bearer token added by Ward');
  await page.getByRole('button', { name: 'Call API', exact: true }).click();
  checkForwardedHeaders(await apiResult(page, 'GET'), 'GET');

  step('click "POST to API": the client adds X-CSRF-Token, Ward checks and strips it');
  await page.locator('#api-result').evaluate((element) => { element.textContent = ''; });
  await page.getByRole('button', { name: /^POST to API/ }).click();
  checkForwardedHeaders(await apiResult(page, 'POST'), 'POST');

  step('a same-origin POST without X-CSRF-Token is refused');
  expectConsoleError(/status of 403/, '/api/no-token');
  const refused = await page.evaluate(async () => {
    const response = await fetch('/api/no-token', { method: 'POST', body: 'x' });
    return { status: response.status, body: await response.json() };
  });
  assert.equal(refused.status, 403, 'POST without the CSRF token: 403');
  assert.equal(refused.body.error, 'csrf_failed');
}

async function crossSitePostsAreRefused(context) {
  step('another site (127.0.0.1) POSTs to Ward (localhost) while the user is logged in');
  const crossSite = await startCrossSite();
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  watchConsole(page);
  try {
    await page.goto(crossSite.url);
    assert.notEqual(new URL(page.url()).hostname, new URL(WARD_URL).hostname, 'a different host');

    // A CORS fetch: sent (a "simple" request needs no preflight), its answer unreadable.
    expectConsoleError(/CORS policy|Failed to fetch/, '');
    expectConsoleError(/status of 40[13]|net::ERR_FAILED/, '/api/cross-site-fetch');
    const corsFetch = await page.evaluate(async (url) => {
      try {
        const response = await fetch(url, { method: 'POST', credentials: 'include', body: 'amount=1000' });
        return `answered ${response.status}`;
      } catch (error) {
        return `failed: ${error.name}`;
      }
    }, `${WARD_URL}/api/cross-site-fetch`);
    assert.equal(corsFetch, 'failed: TypeError', 'the other site cannot read an answer from Ward');

    // A no-cors fetch: the classic blind CSRF request.
    expectConsoleError(/status of 40[13]/, '/api/cross-site-no-cors');
    const blind = await page.evaluate(async (url) => {
      const response = await fetch(url, {
        method: 'POST',
        mode: 'no-cors',
        credentials: 'include',
        headers: { 'Content-Type': 'text/plain' },
        body: 'amount=1000',
      });
      return response.type;
    }, `${WARD_URL}/api/cross-site-no-cors`);
    assert.equal(blind, 'opaque', 'the no-cors request was sent');

    // A form POST: a top-level navigation to Ward, so its answer is visible here.
    expectConsoleError(/status of 403/, '/api/cross-site-form');
    const [answer] = await Promise.all([
      page.waitForResponse((response) => response.url() === `${WARD_URL}/api/cross-site-form`),
      page.click('#attack button[type="submit"]'),
    ]);
    assert.equal(answer.status(), 403, 'Ward refuses the cross-site form POST');
    assert.equal((await answer.json()).error, 'csrf_failed');

    // SameSite=Strict on its own: even a top-level GET from another site comes without the
    // session cookie (Lax would send it), so Ward sees no session.
    await page.goto(crossSite.url);
    expectConsoleError(/status of 401/, '/bff/user');
    const [peek] = await Promise.all([
      page.waitForResponse((response) => response.url() === `${WARD_URL}/bff/user`),
      page.click('#peek'),
    ]);
    assert.equal(peek.status(), 401, 'a link from another site arrives without the session cookie');
  } finally {
    await page.close();
    await new Promise((resolve) => crossSite.server.close(resolve));
  }
  return new URL(crossSite.url).origin;
}

async function logOut(page, context) {
  step('click "Log out": to the IdP\'s end-session page');
  await page.getByRole('button', { name: 'Log out', exact: true }).click();
  await page.waitForURL((url) => !isWard(url.href) && url.pathname.startsWith('/session/end'));
  step('confirm at the IdP: back to Ward, logged out');
  expectConsoleError(/status of 401/, '/bff/user'); // the page asks again: nobody
  await page.click('button[name="logout"]');
  await page.waitForURL((url) => isWard(url.href) && url.pathname === '/');
  await page.getByRole('button', { name: 'Log in', exact: true }).waitFor({ state: 'visible' });
  assert.equal(await page.locator('#logged-in').isHidden(), true, 'no user section after logout');
  const cookies = await context.cookies(WARD_URL);
  assert.ok(!cookies.some((c) => c.name === COOKIE), 'the session cookie is gone');
  expectConsoleError(/status of 401/, '/bff/user');
  const user = await fetchUser(page);
  assert.equal(user.status, 401, 'GET /bff/user answers 401 after logout');
  assert.equal(user.body.error, 'unauthenticated');
}

async function inlineScriptIsBlocked(page) {
  // Under 'strict-dynamic' a running script may add scripts; what keeps an injected string from
  // becoming one is Trusted Types (the CSP's require-trusted-types-for 'script'). Scripts in
  // markup without the nonce are checked in e2e/runtime.spec.mjs.
  step('a string cannot become a script: Trusted Types refuse it');
  const outcome = await page.evaluate(() => {
    const script = document.createElement('script');
    try {
      script.textContent = 'window.__injected = true;';
    } catch (error) {
      return `refused: ${error.name}`;
    }
    document.head.append(script);
    return window.__injected ? 'ran' : 'did not run';
  });
  assert.equal(outcome, 'refused: TypeError', 'an injected inline script does not run');
}

async function main() {
  console.log(`Ward at ${WARD_URL}; Chromium ${CHROMIUM_PATH}`);
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  rmSync(path.join(ARTIFACTS_DIR, 'ward-e2e-failure.png'), { force: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  let page;
  try {
    console.log(`browser: Chromium ${browser.version()}`);
    const context = await browser.newContext();
    // Hermetic: nothing leaves the machine (the IdP's dev pages ask for a web font).
    await context.route((url) => !LOCAL_HOSTS.has(url.hostname), (route) => route.abort('blockedbyclient'));
    page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    watchConsole(page);

    const firstNonce = await loggedOutPage(page);
    await logIn(page);
    await screenshot(page, 'ward-e2e-logged-in.png');
    const reload = await page.reload();
    const secondNonce = /'nonce-([^']+)'/.exec(reload.headers()['content-security-policy'] || '')?.[1];
    assert.ok(secondNonce && secondNonce !== firstNonce, 'every page load gets a fresh CSP nonce');
    await page.locator('#logged-in').waitFor({ state: 'visible' });

    await sessionStaysOutOfScriptReach(page, context);
    await callApi(page);
    await screenshot(page, 'ward-e2e-api.png');
    const checkedOrigins = new Set([WARD_URL, await crossSitePostsAreRefused(context)]);
    await logOut(page, context);

    step('no unexpected console errors');
    const unexpected = unexpectedConsoleErrors(checkedOrigins);
    assert.deepEqual(unexpected.map((e) => redact(`${e.text} (source ${e.source}, page ${e.page})`)), [],
      'the pages logged no unexpected console errors');

    await inlineScriptIsBlocked(page);
    console.log('E2E OK');
  } catch (error) {
    if (page && !page.isClosed()) {
      console.error(`failed on page ${redact(page.url())}`);
      await screenshot(page, 'ward-e2e-failure.png').catch(() => {});
      const text = await page.locator('body').innerText().catch(() => '');
      console.error(`page text:\n${redact(text)}`);
    }
    if (consoleErrors.length > 0) {
      console.error('console errors so far:');
      for (const e of consoleErrors) {
        console.error(`  ${redact(e.text)} (source ${e.source}, page ${e.page})`);
      }
    }
    throw error;
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  console.error(redact(error && error.stack ? error.stack : error));
  process.exit(1);
});
