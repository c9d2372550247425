// The hardened runtime of `[static]` in Chromium: Ward serves e2e/site/ with its CSP (a nonce
// per response, 'strict-dynamic', Trusted Types with `trusted_types = ["fixture"]`). Checks
// that a script without the nonce does not run, that a script a nonced script loads does, and
// that an HTML sink refuses a string. Run by crates/ward/tests/browser_runtime.rs:
//
//   WARD_URL=http://localhost:<port> node e2e/runtime.spec.mjs

import assert from 'node:assert/strict';

import { WARD_URL, runInChromium, step } from './harness.mjs';

/** Collects CSP violations from the document's first moment (an init script is not the page's). */
function recordViolations() {
  window.violations = [];
  document.addEventListener('securitypolicyviolation', (event) => {
    window.violations.push(`${event.effectiveDirective} ${event.blockedURI}`);
  });
}

async function nonceAndStrictDynamic(page) {
  step('GET /: the nonced module runs, and the script it adds runs (strict-dynamic)');
  const messages = [];
  page.on('console', (message) => messages.push(`${message.type()}: ${message.text()}`));
  const response = await page.goto(`${WARD_URL}/`);
  const csp = response.headers()['content-security-policy'];
  console.log(`CSP served: ${csp}`);
  await page.locator('#loaded[data-ran="yes"]').waitFor({ state: 'attached' });
  assert.match(csp, /script-src 'nonce-[A-Za-z0-9_-]{43}' 'strict-dynamic';/);
  assert.match(csp, /; trusted-types fixture$/);
  assert.equal(response.headers()['permissions-policy'].includes('camera=()'), true);
  assert.deepEqual(messages.filter((m) => /policy|feature|security/i.test(m)), [],
    'Chromium understands every header (no unrecognised feature or directive)');
  assert.equal(await page.evaluate(() => typeof window.ward.getUser), 'function',
    'the nonced module imported /bff/client.js');
}

async function scriptsWithoutTheNonceDoNotRun(page) {
  step('a document\'s scripts without the nonce (inline and external) do not run');
  await page.goto(`${WARD_URL}/other.html`);
  const outcome = await page.evaluate(() => ({
    inlineRan: window.inlineRan === true,
    evilRan: window.evilRan === true,
    violations: window.violations,
  }));
  assert.equal(outcome.inlineRan, false, 'the inline script ran');
  assert.equal(outcome.evilRan, false, 'the external script ran');
  assert.deepEqual(outcome.violations.sort(),
    [`script-src-elem ${WARD_URL}/evil.js`, 'script-src-elem inline'].sort());
}

async function trustedTypesGuardTheSinks(page) {
  await page.goto(`${WARD_URL}/`);
  await page.locator('#loaded[data-ran="yes"]').waitFor({ state: 'attached' });

  step('el.innerHTML = "<img …>" throws under Trusted Types');
  const sink = await page.evaluate(() => {
    const element = document.createElement('div');
    try {
      element.innerHTML = '<img src="x" onerror="window.imgRan = true">';
      return 'assigned';
    } catch (error) {
      return `${error.name}: ${error.message}`;
    }
  });
  assert.match(sink, /^TypeError: .*TrustedHTML/, sink);
  assert.ok((await page.evaluate(() => window.violations))
    .includes('require-trusted-types-for trusted-types-sink'), 'the violation was reported');

  step('a script URL from a string throws; a policy not on the list cannot be made');
  const refused = await page.evaluate(() => {
    const outcomes = [];
    try {
      document.createElement('script').src = '/evil.js';
      outcomes.push('script.src assigned');
    } catch (error) {
      outcomes.push(error.name);
    }
    try {
      trustedTypes.createPolicy('attacker', { createHTML: (s) => s });
      outcomes.push('policy created');
    } catch (error) {
      outcomes.push(error.name);
    }
    return outcomes;
  });
  assert.deepEqual(refused, ['TypeError', 'TypeError']);
}

await runInChromium(async (context, newPage) => {
  await context.addInitScript(recordViolations);
  const page = await newPage();
  await nonceAndStrictDynamic(page);
  await scriptsWithoutTheNonceDoNotRun(page);
  await trustedTypesGuardTheSinks(page);
});
