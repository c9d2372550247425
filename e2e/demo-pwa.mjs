// What the demo page shows of Ward's work, checked in Chromium: the session cookie's attributes
// (against the browser's cookie jar), the masked bearer the API received, the 403 of a POST
// without the CSRF token, the expiry warning, the offline app shell with the vault's data, and
// an address bar without the IdP's parameters after logout.

import assert from 'node:assert/strict';

import { COOKIE, WARD_URL, expectConsoleError, step } from './demo-support.mjs';

/** What the service worker may keep: the app shell, nothing personal (docs/pwa-data.md). */
const SHELL = ['/', '/app.js', '/bff/client.js', '/favicon.svg', '/manifest.webmanifest',
  '/pwa.js', '/style.css', '/view.js'];

const text = async (page, id) => (await page.locator(`#${id}`).textContent()).trim();
const scriptNonce = (page) => page.evaluate(() => document.querySelector('script[src="/app.js"]').nonce);

/** The service worker, registered under Trusted Types, controls the page; the manifest is served. */
export async function serviceWorkerControls(page) {
  step('the service worker (registered through the "ward-demo" Trusted Types policy) controls the page');
  await page.locator('body[data-sw="controlling"]').waitFor({ state: 'attached' });
  const csp = (await page.request.get(`${WARD_URL}/`)).headers()['content-security-policy'] || '';
  assert.match(csp, /; trusted-types ward-demo(;|$)/, 'the CSP names the demo\'s one policy');

  step('without the policy no worker registers, and no other policy can be made');
  expectConsoleError(/TrustedScriptURL/, '');
  expectConsoleError(/TrustedTypePolicy named 'other'/, '');
  const refused = await page.evaluate(async () => {
    const outcome = async (attempt) => {
      try {
        await attempt();
        return 'allowed';
      } catch (error) {
        return error.name;
      }
    };
    return {
      plainString: await outcome(() => navigator.serviceWorker.register('/sw.js')),
      otherPolicy: await outcome(() => trustedTypes.createPolicy('other', { createScriptURL: (u) => u })),
    };
  });
  assert.deepEqual(refused, { plainString: 'TypeError', otherPolicy: 'TypeError' });
  const manifest = await page.evaluate(async () => {
    const href = document.querySelector('link[rel="manifest"]').href;
    const response = await fetch(href);
    return { type: response.headers.get('content-type'), body: await response.json() };
  });
  assert.equal(manifest.type, 'application/manifest+json', 'the manifest\'s media type');
  assert.equal(manifest.body.start_url, '/');
}

/** The cookie panel states what the browser's jar holds (the page itself cannot read it). */
export async function cookieFactsMatchTheJar(page, context) {
  step('the page shows the session cookie\'s attributes, as the browser holds them');
  const jar = (await context.cookies(WARD_URL)).find((c) => c.name === COOKIE);
  assert.ok(jar, 'the browser holds the session cookie');
  assert.equal(await text(page, 'cookie-name'), jar.name, 'the name shown is the cookie\'s');
  assert.match(await text(page, 'cookie-prefix'), /^yes/, '__Host- prefix shown');
  assert.equal(await page.locator('#cookie').getAttribute('data-httponly'), String(jar.httpOnly),
    'the page found the cookie out of its reach exactly when the jar says HttpOnly');
  assert.match(await text(page, 'cookie-secure'), jar.secure ? /^yes/ : /^no/, 'Secure shown');
  assert.match(await text(page, 'cookie-samesite'), new RegExp(`^${jar.sameSite}:`), 'SameSite shown');
  assert.equal(await text(page, 'cookie-path'), jar.path, 'Path shown');
  const maxAge = Number(/^(\d+) s/.exec(await text(page, 'cookie-max-age'))?.[1]);
  const jarMaxAge = jar.expires - Date.now() / 1000;
  assert.ok(Math.abs(maxAge - jarMaxAge) < 30, `Max-Age shown ${maxAge}, the jar's ${Math.round(jarMaxAge)}`);
}

/** The client's `expiring` event reaches the page (the test's Ward idles out after 121 s). */
export async function expiryWarningShows(page) {
  step('the client warns before the idle expiry (sessionEvents "expiring")');
  await page.locator('#expiry-warning[data-reason="idle"]').waitFor({ state: 'visible' });
  assert.match(await text(page, 'expiry-text'), /^Your session idles out in \d+ s/);
  assert.notEqual(await text(page, 'session-idle'), '–', 'expiresAt shown');
  assert.notEqual(await text(page, 'session-absolute'), '–', 'absoluteExpiresAt shown');
}

/** "Call API": the page shows the bearer the upstream received, masked, and nowhere whole. */
export async function maskedBearerShows(page) {
  step('click "Call API": the page shows the bearer the API received, masked');
  const [answer] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${WARD_URL}/api/hello` && r.request().method() === 'GET'),
    page.getByRole('button', { name: 'Call API', exact: true }).click(),
  ]);
  const header = (await answer.json()).headers.authorization[0];
  const token = /^Bearer (\S{16,})$/.exec(header)?.[1];
  assert.ok(token, 'the echo API reflected a bearer token');
  const masked = `Bearer ${token.slice(0, 4)}••••${token.slice(-4)} (${token.length} characters)`;
  await page.locator('#bearer', { hasText: masked }).waitFor({ state: 'visible' });
  await page.locator('#api-result', { hasText: /^200 / }).waitFor({ state: 'visible' });
  const html = await page.evaluate(() => document.documentElement.outerHTML);
  assert.ok(!html.includes(token), 'the whole token is nowhere in the page');
  return answer;
}

/** "POST without CSRF token": Ward answers 403 csrf_failed, the page shows it. */
export async function csrfButtonIsRefused(page) {
  step('click "POST without CSRF token": 403 csrf_failed');
  expectConsoleError(/status of 403/, '/api/hello');
  await page.getByRole('button', { name: 'POST without CSRF token', exact: true }).click();
  await page.locator('#csrf-result', { hasText: /^403 csrf_failed:/ }).waitFor({ state: 'visible' });
}

/** Offline, a reload comes from the service worker and the data from the vault. */
export async function offlineReloadShowsTheVault(page, context, screenshot) {
  step('the service worker\'s cache holds the app shell only');
  await page.locator('body[data-vault="saved"]').waitFor({ state: 'attached' });
  const cached = await page.evaluate(async () => {
    const paths = [];
    for (const name of await caches.keys()) {
      const cache = await caches.open(name);
      paths.push(...(await cache.keys()).map((request) => new URL(request.url).pathname));
    }
    return paths.sort();
  });
  assert.deepEqual(cached, SHELL, 'no API answer, no /bff/user in Cache Storage');
  const user = { name: await text(page, 'user-name'), sub: await text(page, 'user-sub') };
  const onlineNonce = await scriptNonce(page);

  step('offline: reload, the page comes from the service worker, its data from the vault');
  await context.setOffline(true);
  expectConsoleError(/ERR_INTERNET_DISCONNECTED|Failed to fetch/, '/bff/user');
  await page.reload();
  await page.locator('body[data-mode="offline"]').waitFor({ state: 'attached' });
  assert.equal(await text(page, 'offline-name'), user.name, 'the name, from the vault');
  assert.equal(await text(page, 'offline-sub'), user.sub, 'the sub, from the vault');
  assert.match(await text(page, 'offline-call'), /^GET \/api\/hello → 200 at /);
  assert.match(await text(page, 'offline-bearer'), /^Bearer \S{4}••••\S{4} \(\d+ characters\)$/);
  await page.locator('body[data-sw="controlling"]').waitFor({ state: 'attached' });
  const offlineNonce = await scriptNonce(page);
  assert.ok(offlineNonce && offlineNonce !== onlineNonce, 'the offline shell got a fresh nonce');
  await screenshot(page, 'ward-demo-5-offline-vault.png');

  step('online again: reload, logged in');
  await context.setOffline(false);
  await page.reload();
  await page.locator('body[data-mode="logged-in"]').waitFor({ state: 'attached' });
}

/** After logout: the IdP sent `?state=` back, the page dropped it; the vault is gone. */
export async function addressBarIsClean(page, landing) {
  step('after logout: no state or code in the address bar, no vault');
  assert.ok(landing, 'the tab came back to the page');
  const landed = new URL(landing);
  assert.ok(landed.searchParams.has('state'), `the IdP returned with ?state= (${landed.search ? 'query' : 'none'})`);
  console.log(`landed with the query parameters ${[...landed.searchParams.keys()].join(', ')}; `
    + `the address bar shows ${page.url()}`);
  assert.equal(page.url(), `${WARD_URL}/`, 'the page removed it from the address bar');
  assert.equal(await text(page, 'address'),
    `Removed state from the address bar, which now reads ${WARD_URL}/`, 'and says so');
  const databases = await page.evaluate(async () => (await indexedDB.databases()).map((d) => d.name));
  assert.ok(!databases.includes('ward-vault'), 'the vault is wiped at logout');
}
