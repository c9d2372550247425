// Ward's demo page in a real browser: headless Chromium (Debian's `chromium`, driven by
// playwright-core) against a running Ward that serves demo/page/ (with `[static]
// trusted_types = ["ward-demo"]`, a 121 s idle timeout and the `/api/dashboard` composite) and an
// `/api` route (token "user") to an upstream answering any path with a JSON description of the
// request.
//
// The walk: load (the service worker takes over) → log in at the IdP → the page shows the user,
// the session cookie's attributes and the expiry warning → "Dashboard" shows both parts, trimmed →
// "Call API" shows the masked bearer →
// "POST without CSRF token" shows 403 → cross-site attempts fail → offline reload shows the
// vault's data → logout → the address bar is clean. A screenshot at each step:
// ward-demo-<n>-<step>.png in E2E_ARTIFACTS_DIR (each path is printed).
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
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';

import { chromium } from 'playwright-core';

import { crossSitePostsAreRefused } from './demo-cross-site.mjs';
import {
  addressBarIsClean, cookieFactsMatchTheJar, csrfButtonIsRefused, expiryWarningShows,
  maskedBearerShows, offlineReloadShowsTheVault, serviceWorkerControls,
} from './demo-pwa.mjs';
import {
  ARTIFACTS_DIR, CHROMIUM_ARGS, CHROMIUM_PATH, COOKIE, LOCAL_HOSTS, STEP_TIMEOUT_MS, USER,
  WARD_URL, consoleErrors, expectConsoleError, isWard, redact, screenshot, step,
  unexpectedConsoleErrors, watchConsole,
} from './demo-support.mjs';

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
  // The page masks the token it was echoed (e2e/demo-pwa.mjs checks it against the whole one).
  assert.match(authorization[0], /^Bearer \S{4}••••\S{4} \(\d+ characters\)$/,
    `${method}: the upstream got a bearer token, shown masked`);
  assert.ok(!(headers.cookie || []).some((c) => c.includes(COOKIE)),
    `${method}: Ward's session cookie never reaches the upstream`);
  assert.equal(headers['x-csrf-token'], undefined, `${method}: the CSRF header never reaches the upstream`);
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

async function callApi(page, takeScreenshot) {
  step('click "Dashboard": one call, Ward fetches /api/hello and /api/time at once, trimmed');
  await page.getByRole('button', { name: /^Dashboard/ }).click();
  const dashboard = await apiResult(page, 'GET (composite /api/dashboard)');
  // The test's composite (tests/browser.rs) trims each part of the echo API's answer to
  // `method` and `path`; demo/run's trims the demo API's to its own fields.
  assert.deepEqual(dashboard, {
    hello: { method: 'GET', path: '/api/hello' },
    clock: { method: 'GET', path: '/api/time' },
  }, 'one member per part, each trimmed: no headers, no bearer');

  step('GET /api/hello with the bearer token added by Ward');
  await page.locator('#api-result').evaluate((element) => { element.textContent = ''; });
  await maskedBearerShows(page);
  checkForwardedHeaders(await apiResult(page, 'GET'), 'GET');
  await takeScreenshot('ward-demo-3-api-masked-bearer.png');

  step('click "POST to API": the client adds X-CSRF-Token, Ward checks and strips it');
  await page.locator('#api-result').evaluate((element) => { element.textContent = ''; });
  await page.getByRole('button', { name: /^POST to API/ }).click();
  checkForwardedHeaders(await apiResult(page, 'POST'), 'POST');

  await csrfButtonIsRefused(page);
  await takeScreenshot('ward-demo-4-csrf-403.png');

}

async function logOut(page, context) {
  step('click "Log out": to the IdP\'s end-session page');
  await page.getByRole('button', { name: 'Log out', exact: true }).click();
  await page.waitForURL((url) => !isWard(url.href) && url.pathname.startsWith('/session/end'));
  step('confirm at the IdP: back to Ward, logged out');
  expectConsoleError(/status of 401/, '/bff/user'); // the page asks again: nobody
  // Every address the tab shows on the way back, the landing's (with the IdP's query) first.
  const addresses = [];
  const record = (frame) => frame === page.mainFrame() && addresses.push(frame.url());
  page.on('framenavigated', record);
  await page.click('button[name="logout"]');
  await page.waitForURL((url) => isWard(url.href) && url.pathname === '/');
  await page.getByRole('button', { name: 'Log in', exact: true }).waitFor({ state: 'visible' });
  page.off('framenavigated', record);
  assert.equal(await page.locator('#logged-in').isHidden(), true, 'no user section after logout');
  const cookies = await context.cookies(WARD_URL);
  assert.ok(!cookies.some((c) => c.name === COOKIE), 'the session cookie is gone');
  expectConsoleError(/status of 401/, '/bff/user');
  const user = await fetchUser(page);
  assert.equal(user.status, 401, 'GET /bff/user answers 401 after logout');
  assert.equal(user.body.error, 'unauthenticated');
  return addresses.find((address) => isWard(address) && new URL(address).pathname === '/');
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
  // This run's screenshots only: none left from an earlier run.
  for (const name of readdirSync(ARTIFACTS_DIR)) {
    if (name === 'ward-e2e-failure.png' || /^ward-demo-.*\.png$/.test(name)) {
      rmSync(path.join(ARTIFACTS_DIR, name), { force: true });
    }
  }
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

    const shot = (name) => screenshot(page, name);
    const firstNonce = await loggedOutPage(page);
    await serviceWorkerControls(page);
    await shot('ward-demo-1-logged-out.png');
    await logIn(page);
    await cookieFactsMatchTheJar(page, context);
    await expiryWarningShows(page);
    await shot('ward-demo-2-logged-in.png');
    const reload = await page.reload();
    const secondNonce = /'nonce-([^']+)'/.exec(reload.headers()['content-security-policy'] || '')?.[1];
    assert.ok(secondNonce && secondNonce !== firstNonce, 'every page load gets a fresh CSP nonce');
    await page.locator('#logged-in').waitFor({ state: 'visible' });

    await sessionStaysOutOfScriptReach(page, context);
    await callApi(page, shot);
    const checkedOrigins = new Set([WARD_URL, await crossSitePostsAreRefused(context)]);
    await offlineReloadShowsTheVault(page, context, screenshot);
    await addressBarIsClean(page, await logOut(page, context));
    await shot('ward-demo-6-logged-out-clean-url.png');

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
