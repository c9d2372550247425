// The password handshake in Chromium (SPEC §2, `[login] password_grant = true`): Ward serves
// e2e/password-site/, whose nonced script posts the form's credentials to
// `POST /bff/login/password` as JSON with `X-CSRF-Token`. A wrong password shows
// `invalid_credentials` and leaves no `__Host-` cookie in the browser's jar; the right one
// shows the user from `getUser()` and a proxied API call through `bffFetch` answered 200.
//
//   WARD_URL=http://localhost:<port> E2E_PASSWORD_USER=... E2E_PASSWORD=... \
//     E2E_WRONG_PASSWORD=... node e2e/password-login.spec.mjs
//
// crates/ward/tests/browser_password_login.rs starts the stack and runs this script. Nothing
// printed holds either password, a cookie or a CSRF value.

import assert from 'node:assert/strict';

import { WARD_URL, runInChromium, step } from './harness.mjs';

const USER = required('E2E_PASSWORD_USER');
const PASSWORD = required('E2E_PASSWORD');
const WRONG_PASSWORD = required('E2E_WRONG_PASSWORD');

function required(name) {
  const value = process.env[name];
  assert.ok(value, `${name} is required`);
  return value;
}

const hostCookies = async (context) =>
  (await context.cookies(WARD_URL)).filter((c) => c.name.startsWith('__Host-'));

async function submit(page, password, state) {
  await page.fill('input[name="username"]', USER);
  await page.fill('input[name="password"]', password);
  await page.click('button[type="submit"]');
  await page.locator(`body[data-state="${state}"]`).waitFor({ state: 'attached' });
}

await runInChromium(async (context, newPage) => {
  const page = await newPage();
  const logins = [];
  page.on('response', (response) => {
    if (new URL(response.url()).pathname === '/bff/login/password') {
      logins.push(response.status());
    }
  });
  await page.goto(`${WARD_URL}/`);
  await page.locator('body[data-state="ready"]').waitFor({ state: 'attached' });

  step(`a wrong password for ${USER}`);
  await submit(page, WRONG_PASSWORD, 'refused');
  assert.equal(await page.locator('#error').innerText(), 'invalid_credentials');
  const after = await hostCookies(context);
  assert.deepEqual(after.map((c) => c.name), [], 'no __Host- cookie after a refusal');

  step(`the right password for ${USER}`);
  await submit(page, PASSWORD, 'logged-in');
  assert.equal(await page.locator('#user').innerText(), USER, 'getUser() after the login');
  assert.equal(await page.locator('#api').innerText(), 'API 200', 'bffFetch to a proxied route');
  assert.equal(await page.locator('#error').innerText(), '');
  const session = await hostCookies(context);
  assert.equal(session.length, 1, `one session cookie: ${session.map((c) => c.name).join(', ')}`);
  assert.ok(session[0].httpOnly, 'the session cookie is HttpOnly');
  assert.equal(session[0].sameSite, 'Strict');
  assert.equal(await page.inputValue('input[name="password"]'), '', 'the field was cleared');
  assert.deepEqual(logins, [401, 200]);
  console.log(`password logins answered ${logins.join(', ')}; session cookie ${session[0].name}`);
});
