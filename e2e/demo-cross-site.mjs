// The demo's cross-site checks: another site (127.0.0.1) POSTs to Ward (localhost) while the
// user is logged in, by CORS fetch, no-cors fetch and form; it cannot frame Ward's page
// (frame-ancestors 'none'); and a link from there arrives without the session cookie
// (SameSite=Strict).

import assert from 'node:assert/strict';
import http from 'node:http';

import { STEP_TIMEOUT_MS, WARD_URL, expectConsoleError, step, watchConsole } from './demo-support.mjs';

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

export async function crossSitePostsAreRefused(context) {
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

    // Framing (clickjacking): Ward's document says `frame-ancestors 'none'` and
    // `X-Frame-Options: DENY`, so the other site's frame shows Chromium's error page, not Ward.
    expectConsoleError(/frame-ancestors 'none'/, '');
    const [refusal] = await Promise.all([
      page.waitForEvent('console', (message) => /frame-ancestors 'none'/.test(message.text())),
      page.evaluate((url) => {
        const frame = document.createElement('iframe');
        frame.src = url;
        document.body.append(frame);
      }, `${WARD_URL}/`),
    ]);
    assert.match(refusal.text(), /"frame-ancestors 'none'"\. The request has been blocked/,
      `Chromium refused to frame Ward: ${refusal.text()}`);
    const framed = page.frames().filter((frame) => frame !== page.mainFrame());
    assert.equal(framed.length, 1, 'one frame');
    assert.ok(!framed[0].url().startsWith(WARD_URL), `the frame holds no Ward page: ${framed[0].url()}`);

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
