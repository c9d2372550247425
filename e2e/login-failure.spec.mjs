// A login that fails at the callback, in Chromium: the browser navigates to /bff/login, logs in
// at the test IdP, and is sent back to /bff/callback while the IdP's token endpoint fails (the
// Rust test switched that on). The callback is a top-level navigation (`Sec-Fetch-Mode:
// navigate`), so Ward must answer with a redirect to `[login] error_path?bff_error=login_failed`
// (SPEC §2) — a page the person can read — not a JSON error, and set no session cookie.
//
//   WARD_URL=http://localhost:<port> node e2e/login-failure.spec.mjs
//
// crates/ward/tests/browser_login_failure.rs starts the stack and runs this script.

import assert from 'node:assert/strict';

import { USER, WARD_URL, isWard, runInChromium, step } from './harness.mjs';

await runInChromium(async (context, newPage) => {
  const page = await newPage();
  const callbacks = [];
  page.on('response', (response) => {
    const url = new URL(response.url());
    if (isWard(url.href) && url.pathname === '/bff/callback') {
      callbacks.push({ status: response.status(), location: response.headers().location });
    }
  });

  step('navigate to /bff/login');
  await page.goto(`${WARD_URL}/bff/login?returnUrl=/`);
  await page.waitForURL((url) => !isWard(url.href) && url.pathname.startsWith('/interaction/'));
  step(`log in as ${USER} at the IdP`);
  await page.fill('input[name="login"]', USER);
  await page.fill('input[name="password"]', 'x');
  await page.click('button[type="submit"]');
  await page.locator('input[name="prompt"][value="consent"]').waitFor({ state: 'attached' });
  const landed = page.waitForURL((url) => isWard(url.href) && url.searchParams.has('bff_error'));
  await page.click('button[type="submit"]');
  await landed;

  const url = new URL(page.url());
  step(`landed on ${url.pathname}${url.search}`);
  assert.equal(url.pathname, '/', 'the error path');
  assert.equal(url.searchParams.get('bff_error'), 'login_failed');
  assert.deepEqual(callbacks.map((c) => c.status), [302], 'one callback, answered with a redirect');
  assert.equal(callbacks[0].location, '/?bff_error=login_failed');
  const type = await page.evaluate(() => document.contentType);
  assert.equal(type, 'text/html', 'a page, not a JSON error');
  assert.match(await page.title(), /Ward runtime fixture/);
  // The login binding (`__Host-ward-tx`) may stay until it expires; a session cookie may not.
  const cookies = await context.cookies(WARD_URL);
  assert.ok(!cookies.some((c) => c.name === '__Host-ward'),
    `no session cookie: ${cookies.map((c) => c.name).join(', ')}`);
  await page.locator('#status', { hasText: 'Logged out' }).waitFor();
  console.log(`callback answered ${callbacks[0].status} to ${callbacks[0].location}`);
});
