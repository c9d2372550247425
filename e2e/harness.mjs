// What e2e/runtime.spec.mjs and e2e/client.spec.mjs share: the environment, Chromium (Debian's,
// through playwright-core) in a hermetic context, steps, and the login at the test IdP.
//
// Env: WARD_URL (required: Ward's public origin, serving e2e/site/), CHROMIUM_PATH (default
// /usr/bin/chromium), E2E_USER (default alice). Nothing printed holds a token, cookie or CSRF
// value.

import { chromium } from 'playwright-core';

export const WARD_URL = new URL(required('WARD_URL')).origin;
export const USER = process.env.E2E_USER || 'alice';
const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
/** Hosts the browser may reach: Ward (localhost) and the IdP (127.0.0.1). */
const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1']);
/** Longest wait for one navigation, element or page state. */
export const STEP_TIMEOUT_MS = 20_000;
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
    console.error(`${name} is required (e.g. ${name}=http://localhost:8080)`);
    process.exit(2);
  }
  return value;
}

export function step(text) {
  console.log(`step: ${text}`);
}

export const isWard = (url) => new URL(url).origin === WARD_URL;

/**
 * Runs `body(context, newPage)` in a fresh Chromium context that reaches only local hosts;
 * prints "E2E OK" when it returns, exits non-zero (with the page's text) when it throws.
 */
export async function runInChromium(body) {
  console.log(`Ward at ${WARD_URL}; Chromium ${CHROMIUM_PATH}`);
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
  const pages = [];
  try {
    console.log(`browser: Chromium ${browser.version()}`);
    const context = await browser.newContext();
    await context.route((url) => !LOCAL_HOSTS.has(url.hostname), (route) => route.abort('blockedbyclient'));
    const newPage = async () => {
      const page = await context.newPage();
      page.setDefaultTimeout(STEP_TIMEOUT_MS);
      page.on('pageerror', (error) => console.error(`page error on ${page.url()}: ${error.message}`));
      pages.push(page);
      return page;
    };
    await body(context, newPage);
    console.log('E2E OK');
  } catch (error) {
    for (const page of pages.filter((p) => !p.isClosed())) {
      const text = await page.locator('body').innerText().catch(() => '');
      console.error(`page ${page.url()}:\n${text}`);
    }
    console.error(error && error.stack ? error.stack : error);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

/** Logs `page` (on Ward's fixture site, logged out) in as USER at the test IdP and back. */
export async function logIn(page) {
  step(`log in as ${USER} at the IdP`);
  await page.evaluate(() => window.ward.login('/'));
  await page.waitForURL((url) => !isWard(url.href) && url.pathname.startsWith('/interaction/'));
  await page.fill('input[name="login"]', USER);
  await page.fill('input[name="password"]', 'x');
  await page.click('button[type="submit"]');
  await page.locator('input[name="prompt"][value="consent"]').waitFor({ state: 'attached' });
  await page.click('button[type="submit"]');
  await page.waitForURL((url) => isWard(url.href) && url.pathname === '/');
  await page.locator('body[data-ready="logged-in"]').waitFor({ state: 'attached' });
}
