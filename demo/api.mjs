// The demo's API: a tiny upstream behind Ward's `/api` route (token = "user").
//
// It shows what an API behind Ward receives: a bearer token attached by Ward, and none of the
// browser's session cookie or CSRF header. It never echoes or logs the token itself: it
// answers the token masked (its first and last four characters, for the demo page to show)
// and its length. Node's standard library only.
//
//   node demo/api.mjs          (env API_HOST, default 127.0.0.1; API_PORT, default 7001)

import http from 'node:http';

const HOST = process.env.API_HOST || '127.0.0.1';
const PORT = Number(process.env.API_PORT || 7001);

function sendJson(res, status, body, extraHeaders = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
    ...extraHeaders,
  });
  res.end(text);
}

/** The bearer token of `Authorization: Bearer <token>`, or null. */
function bearerToken(req) {
  const match = /^Bearer[ ]+([^ ]+)$/i.exec(req.headers.authorization || '');
  return match ? match[1] : null;
}

/** `Bearer abcd••••wxyz (N characters)`: enough to recognise a token, not to use it. */
function maskedBearer(token) {
  const shown = token.length >= 16 ? `${token.slice(0, 4)}••••${token.slice(-4)}` : '••••';
  return `Bearer ${shown} (${token.length} characters)`;
}

function hello(req, res) {
  const token = bearerToken(req);
  if (token === null) {
    sendJson(res, 401, { error: 'unauthenticated', message: 'no bearer token', authorized: false },
      { 'WWW-Authenticate': 'Bearer' });
    return;
  }
  // A real API would validate the token here (signature or introspection, audience, scope).
  sendJson(res, 200, {
    message: req.method === 'POST'
      ? 'Hello from the demo API: this POST passed Ward\'s CSRF check.'
      : 'Hello from the demo API.',
    method: req.method,
    time: new Date().toISOString(),
    authorized: true,
    tokenLength: token.length,
    bearer: maskedBearer(token),
    // What Ward keeps away from upstreams (SPEC §5): both must be false. (Other cookies the
    // browser holds for this origin do pass; only Ward's own are removed.)
    receivedSessionCookie: /(^|;\s*)__Host-ward=/.test(req.headers.cookie || ''),
    receivedCsrfHeader: req.headers['x-csrf-token'] !== undefined,
    forwardedFor: req.headers['x-forwarded-for'] || null,
  });
}

/** A second document for the dashboard composite; `internal` is what its `fields` trim away. */
function time(req, res) {
  if (bearerToken(req) === null) {
    sendJson(res, 401, { error: 'unauthenticated', message: 'no bearer token' });
    return;
  }
  sendJson(res, 200, {
    now: new Date().toISOString(),
    zone: Intl.DateTimeFormat().resolvedOptions().timeZone,
    internal: { host: 'api-1', build: 'demo' },
  });
}

const server = http.createServer((req, res) => {
  const path = new URL(req.url, 'http://api.invalid').pathname;
  // Drain any request body; this API reads none.
  req.resume();
  req.on('end', () => {
    if (path === '/api/hello') {
      if (req.method === 'GET' || req.method === 'POST') {
        hello(req, res);
      } else {
        sendJson(res, 405, { error: 'method_not_allowed', message: 'use GET or POST' },
          { Allow: 'GET, POST' });
      }
    } else if (path === '/api/time' && req.method === 'GET') {
      time(req, res);
    } else {
      sendJson(res, 404, { error: 'not_found', message: 'no such API path' });
    }
    console.log(`${req.method} ${path} -> ${res.statusCode}`);
  });
});

server.listen(PORT, HOST, () => {
  console.log(`READY http://${HOST}:${PORT}`);
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
