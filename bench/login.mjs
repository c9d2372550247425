// Scripted logins for bench/run (benchmark only; never part of the tests).
//
//   node login.mjs cookie    <ward_public_url>
//       one login through Ward (GET /bff/login -> IdP dev pages -> /bff/callback); prints
//       the session cookie as `name=value`, ready for a `Cookie:` header.
//   node login.mjs callbacks <ward_public_url> <issuer> <n>
//       n logins through Ward, timing only `GET /bff/callback` (Ward takes the login
//       transaction, exchanges the code at the IdP, validates the ID token, calls userinfo,
//       writes the session); then n logins driven by this script as the client itself, timing
//       the same two IdP calls Ward makes inside the callback (POST /token, GET /me). Prints
//       one JSON object with the medians.
//
// Ward listens on 127.0.0.1 while its public URL says localhost (so the IdP's redirect_uri and
// the Secure cookies fit a secure context): requests to localhost go to 127.0.0.1.
import { createHash, randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';

const CLIENT_ID = process.env.CLIENT_ID || 'bff';
const CLIENT_SECRET = process.env.CLIENT_SECRET || 'bff-secret';

/** A cookie jar per host:port; paths are ignored (the latest cookie of a name wins). */
class Jar {
  constructor() { this.hosts = new Map(); }
  header(url) {
    const jar = this.hosts.get(new URL(url).host);
    return jar && jar.size ? [...jar].map(([k, v]) => `${k}=${v}`).join('; ') : undefined;
  }
  take(url, res) {
    const host = new URL(url).host;
    if (!this.hosts.has(host)) this.hosts.set(host, new Map());
    const jar = this.hosts.get(host);
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (attrs.some((a) => /^\s*max-age=0\s*$/i.test(a)) || value === '') jar.delete(name);
      else jar.set(name, value);
    }
  }
  get(url, name) { return this.hosts.get(new URL(url).host)?.get(name); }
}

const wire = (url) => url.replace(/^http:\/\/localhost:/, 'http://127.0.0.1:');

/** One request without following redirects; the jar sends and keeps cookies by public host. */
async function request(jar, url, init = {}) {
  const headers = { ...(init.headers || {}) };
  const cookie = jar.header(url);
  if (cookie) headers.cookie = cookie;
  const res = await fetch(wire(url), { ...init, headers, redirect: 'manual' });
  jar.take(url, res);
  const body = await res.text();
  const location = res.headers.get('location');
  return { status: res.status, body, location: location && new URL(location, url).href };
}

/** From an authorization request to the redirect back to `callback`, through the dev pages. */
async function throughIdp(jar, authUrl, callback, login) {
  let next = authUrl;
  for (let step = 0; step < 12; step++) {
    if (next.startsWith(callback)) return next;
    if (next.includes('/interaction/')) {
      const page = await request(jar, next);
      const form = page.body.includes('name="prompt" value="login"')
        ? { prompt: 'login', login, password: 'x' }
        : { prompt: 'consent' };
      const res = await request(jar, next, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(form).toString(),
      });
      next = res.location;
    } else {
      const res = await request(jar, next);
      next = res.location;
    }
    if (!next) throw new Error(`login stalled at step ${step}`);
  }
  throw new Error('too many redirects');
}

/** A login through Ward; returns the callback URL and the jar holding Ward's login binding. */
async function wardToCallback(ward, user) {
  const jar = new Jar();
  const start = await request(jar, `${ward}/bff/login`);
  if (start.status !== 302 || !start.location) throw new Error(`/bff/login answered ${start.status}`);
  const callbackUrl = await throughIdp(jar, start.location, `${ward}/bff/callback`, user);
  return { jar, callbackUrl };
}

async function wardLogin(ward, user) {
  const { jar, callbackUrl } = await wardToCallback(ward, user);
  const t0 = performance.now();
  const res = await request(jar, callbackUrl);
  const ms = performance.now() - t0;
  if (res.status !== 302) throw new Error(`/bff/callback answered ${res.status}: ${res.body.slice(0, 200)}`);
  return { jar, ms };
}

const b64url = (buf) => buf.toString('base64url');

/** This script as the OIDC client: the same two IdP calls Ward makes in its callback. */
async function clientExchange(issuer, ward, user) {
  const jar = new Jar();
  const redirectUri = `${ward}/bff/callback`;
  const verifier = b64url(randomBytes(32));
  const auth = new URL(`${issuer}/auth`);
  auth.search = new URLSearchParams({
    client_id: CLIENT_ID,
    response_type: 'code',
    redirect_uri: redirectUri,
    scope: 'openid profile email offline_access',
    state: b64url(randomBytes(12)),
    nonce: b64url(randomBytes(12)),
    code_challenge: b64url(createHash('sha256').update(verifier).digest()),
    code_challenge_method: 'S256',
  }).toString();
  const back = await throughIdp(jar, auth.href, redirectUri, user);
  const code = new URL(back).searchParams.get('code');
  const basic = Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64');
  const t0 = performance.now();
  const tok = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier }).toString(),
  });
  const tokens = await tok.json();
  const t1 = performance.now();
  if (tok.status !== 200) throw new Error(`token endpoint answered ${tok.status}`);
  const me = await fetch(`${issuer}/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
  await me.text();
  const t2 = performance.now();
  if (me.status !== 200) throw new Error(`userinfo answered ${me.status}`);
  return { token: t1 - t0, userinfo: t2 - t1 };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

const [mode, ward, ...rest] = process.argv.slice(2);
try {
  if (mode === 'cookie') {
    const { jar } = await wardLogin(ward, 'bench');
    const name = process.env.COOKIE_NAME || '__Host-ward';
    const value = jar.get(ward, name);
    if (!value) throw new Error(`no ${name} cookie after the callback`);
    console.log(`${name}=${value}`);
  } else if (mode === 'callbacks') {
    const [issuer, nArg] = rest;
    const n = Number(nArg || 100);
    // warm-up: connections, JIT, Ward's first-use paths
    for (let i = 0; i < 5; i++) { await wardLogin(ward, `warm${i}`); await clientExchange(issuer, ward, `warm${i}`); }
    const callback = [];
    const idp = [];
    const token = [];
    const userinfo = [];
    for (let i = 0; i < n; i++) {
      callback.push((await wardLogin(ward, `cb${i}`)).ms);
      const x = await clientExchange(issuer, ward, `ex${i}`);
      token.push(x.token); userinfo.push(x.userinfo); idp.push(x.token + x.userinfo);
    }
    const wardMs = median(callback) - median(idp);
    console.log(JSON.stringify({
      n,
      callback_p50_ms: +median(callback).toFixed(2),
      callback_p99_ms: +pct(callback, 0.99).toFixed(2),
      idp_token_p50_ms: +median(token).toFixed(2),
      idp_userinfo_p50_ms: +median(userinfo).toFixed(2),
      idp_p50_ms: +median(idp).toFixed(2),
      ward_p50_ms: +wardMs.toFixed(2),
      ward_sessions_per_s: wardMs > 0 ? Math.round(1000 / wardMs) : null,
      callbacks_per_s_incl_idp: Math.round(1000 / median(callback)),
    }));
  } else {
    console.error('usage: node login.mjs cookie <ward_url> | callbacks <ward_url> <issuer> <n>');
    process.exit(2);
  }
} catch (err) {
  console.error(`login.mjs: ${err.message}`);
  process.exit(1);
}
