// What e2e/demo.spec.mjs and its parts share: the environment, steps, console errors the run
// expects, and screenshots (kept as test artefacts in E2E_ARTIFACTS_DIR).

import path from 'node:path';
import os from 'node:os';

export const WARD_URL = new URL(required('WARD_URL')).origin;
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const ARTIFACTS_DIR = process.env.E2E_ARTIFACTS_DIR || os.tmpdir();
export const USER = process.env.E2E_USER || 'alice';
export const COOKIE = '__Host-ward';
/** Hosts the browser may reach: Ward (localhost), the IdP and the cross-site page (127.0.0.1). */
export const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1']);
/** Longest wait for one navigation, element or page state. */
export const STEP_TIMEOUT_MS = 20_000;
/** The launch flags measured on this kind of machine (DEPENDENCY-NOTES §4). */
export const CHROMIUM_ARGS = [
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

export function step(text) {
  console.log(`step: ${text}`);
}

/** Bearer tokens the echo upstream reflects must not reach this script's output. */
export function redact(text) {
  return String(text).replace(/Bearer\s+[^\s"\\]+/gi, 'Bearer <redacted>');
}

export const isWard = (url) => new URL(url).origin === WARD_URL;

// ---- console errors ----------------------------------------------------------------------------

/**
 * Console errors the browser reports, with the page they happened on. Those on Ward's pages and
 * on the test's own cross-site page count; the IdP's dev pages (which want a web font and a
 * favicon) are not under test. Some are expected: the browser logs every 4xx answer of a fetch
 * ("Failed to load resource"), and the checks below provoke a few on purpose. Those are declared
 * with `expectConsoleError` before they happen; anything else fails the run.
 */
export const consoleErrors = [];
const expectedConsoleErrors = [];

export function watchConsole(page) {
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
export function expectConsoleError(pattern, sourcePath) {
  expectedConsoleErrors.push({ pattern, sourcePath, seen: false });
}

export function unexpectedConsoleErrors(checkedOrigins) {
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

/** Saves a screenshot, with any unmasked bearer token in the API's answer blanked out first. */
export async function screenshot(page, name) {
  await page.evaluate(() => {
    const result = document.getElementById('api-result');
    if (result) {
      result.textContent = result.textContent.replace(/Bearer\s+(?![^\s"\\]*••••)[^\s"\\]+/gi, 'Bearer <redacted>');
    }
  }).catch(() => {});
  const file = path.join(ARTIFACTS_DIR, name);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot: ${file}`);
  return file;
}

