// Test / demo OpenID Provider for Ward's integration tests and local demo. NOT for production:
// every login and password is accepted, keys live in memory, client secrets are well known.
// oidc-provider 9.x (ESM only), Node >= 20.19.
//
// Usage: node provider.mjs       (listens on 127.0.0.1:4000; prints `READY <issuer>` once listening)
// Env:   OP_PORT (0 = pick a free port), OP_HOST, BFF_ORIGIN (default http://127.0.0.1:8080),
//        CLIENT_ID / CLIENT_SECRET (default bff / bff-secret),
//        CLIENT_AUTH=client_secret_basic (default) | client_secret_post | private_key_jwt
//          (private_key_jwt: CLIENT_JWKS = the client's public JWKS as JSON; no client secret),
//        PAR=off (default) | on | required (RFC 9126 pushed authorization requests at /request),
//        FAPI=2.0 (oidc-provider's FAPI 2.0 profile: client assertions' aud must be the issuer,
//          PKCE and redirect_uri required; implies CLIENT_AUTH=private_key_jwt, PAR=required),
//        AT_FORMAT=jwt (access tokens as JWT for resource "urn:bff:api"; default opaque),
//        DPOP=1 (RFC 9449 DPoP; DPOP_NONCE=1 also requires server nonces; with FAPI=2.0 the
//          client must bind its tokens: dpop_bound_access_tokens),
//        RESOURCES=https://a.example,https://b.example (RFC 8707: JWT access tokens with aud = the
//          resource, for authorization/refresh requests naming one; logs `resource-token <uri> <outcome>`),
//        TOKEN_EXCHANGE=1 (with RESOURCES: RFC 8693 token exchange of an access token for one resource),
//        ALWAYS_REFRESH=1 (issue refresh tokens without offline_access/prompt=consent),
//        AT_TTL / RT_TTL / IDT_TTL seconds (defaults 300 / 86400 / 3600),
//        KEEP_SSRF_GUARD=1 (keep oidc-provider's loopback/private-IP block on back-channel logout),
//        EXIT_WITH_STDIN=1 (exit when stdin closes: the parent test process has gone),
//        TEST_HOOKS=1 (enable the /__test/* endpoints below; never in a demo),
//        PASSWORD_GRANT=1 (register the resource-owner password grant, see below; only then is
//        `password` in grant_types_supported and the client's grant_types).
//        TLS_CERT / TLS_KEY (PEM files: serve https, the issuer becomes https://…).
//        MTLS=1 (RFC 8705, needs TLS_CERT/TLS_KEY: see the MTLS block below; implies
//          CLIENT_AUTH=tls_client_auth), MTLS_CA (PEM: the CA client certificates must chain to),
//          MTLS_SAN_DNS (the registered tls_client_auth_san_dns, default ward-client.test),
//          MTLS_ALIAS_HOST (publish mtls_endpoint_aliases on this host name, same port).
import { X509Certificate, generateKeyPairSync, hash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { SignJWT, base64url, decodeJwt, decodeProtectedHeader } from 'jose';
import Provider, { errors } from 'oidc-provider';

const HOST = process.env.OP_HOST || '127.0.0.1';
const PORT = Number(process.env.OP_PORT || 4000);
const BFF = process.env.BFF_ORIGIN || 'http://127.0.0.1:8080';
const CLIENT_ID = process.env.CLIENT_ID || 'bff';
const CLIENT_SECRET = process.env.CLIENT_SECRET || 'bff-secret';
const FAPI = process.env.FAPI === '2.0';
const MTLS = process.env.MTLS === '1';
const CLIENT_AUTH = process.env.CLIENT_AUTH
  || (MTLS ? 'tls_client_auth' : FAPI ? 'private_key_jwt' : 'client_secret_basic');
const PAR = process.env.PAR || (FAPI ? 'required' : 'off');
const CLIENT_JWKS = process.env.CLIENT_JWKS ? JSON.parse(process.env.CLIENT_JWKS) : undefined;
const AT_TTL = Number(process.env.AT_TTL || 300);
const RT_TTL = Number(process.env.RT_TTL || 86400);
const IDT_TTL = Number(process.env.IDT_TTL || 3600);
const API_RESOURCE = 'urn:bff:api';
const PASSWORD_GRANT = process.env.PASSWORD_GRANT === '1';
// The one account the password grant knows (test values, like the client secret above).
const PASSWORD_USER = 'pat';
const PASSWORD_SECRET = 'correct horse battery staple';

if (!['client_secret_basic', 'client_secret_post', 'private_key_jwt', ...(MTLS ? ['tls_client_auth'] : [])].includes(CLIENT_AUTH)) {
  console.error(`CLIENT_AUTH must be client_secret_basic, client_secret_post or private_key_jwt, got ${CLIENT_AUTH}`);
  process.exit(2);
}
if (CLIENT_AUTH === 'private_key_jwt' && !CLIENT_JWKS?.keys?.length) {
  console.error('CLIENT_AUTH=private_key_jwt needs CLIENT_JWKS (the client\'s public JWKS as JSON)');
  process.exit(2);
}
if (!['off', 'on', 'required'].includes(PAR)) {
  console.error(`PAR must be off, on or required, got ${PAR}`);
  process.exit(2);
}
const SECRET_AUTH = !['private_key_jwt', 'tls_client_auth'].includes(CLIENT_AUTH);

// Fresh signing key per run (no key material on disk).
const SIGNING_KID = 'test-rs256';
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: SIGNING_KID, use: 'sig', alg: 'RS256' };

async function findAccount(ctx, sub) {
  return {
    accountId: sub,
    async claims() {
      return { sub, email: `${sub}@example.test`, email_verified: true, name: `Test ${sub}` };
    },
  };
}

function configuration() {
  return {
    clients: [{
      client_id: CLIENT_ID,
      ...(SECRET_AUTH ? { client_secret: CLIENT_SECRET } : CLIENT_JWKS ? { jwks: CLIENT_JWKS } : {}),
      token_endpoint_auth_method: CLIENT_AUTH,
      redirect_uris: [`${BFF}/bff/callback`],
      post_logout_redirect_uris: [`${BFF}/`, `${BFF}/bff/logged-out`],
      // client_credentials: Ward's own tokens for `token = "client"` routes.
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials',
        ...(PASSWORD_GRANT ? ['password'] : []), ...(TOKEN_EXCHANGE ? [TOKEN_EXCHANGE_GRANT] : [])],
      response_types: ['code'],
      // OIDC Back-Channel Logout 1.0 (needs features.backchannelLogout)
      backchannel_logout_uri: `${BFF}/bff/backchannel-logout`,
      backchannel_logout_session_required: true,
    }],
    jwks: { keys: [jwk] },
    cookies: { keys: ['test-cookie-signing-key-1'] },
    // Any login/password is accepted by the dev interactions; the login value becomes `sub`.
    findAccount,
    // oidc-provider's defaults plus API scopes for client-credentials tokens (`token = "client"`).
    scopes: ['openid', 'offline_access', 'api:read', 'api:write'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    // put scope-requested claims (email, name) into the ID token too (default true = userinfo only)
    conformIdTokenClaims: false,
    pkce: { required: () => true }, // S256 is the only method oidc-provider 9 accepts
    features: {
      devInteractions: { enabled: true }, // built-in login+consent pages at /interaction/:uid
      revocation: { enabled: true }, // POST /token/revocation
      introspection: { enabled: true }, // POST /token/introspection
      userinfo: { enabled: true }, // GET /me
      rpInitiatedLogout: { enabled: true }, // GET|POST /session/end
      backchannelLogout: { enabled: true },
      // grant_type=client_credentials (Ward's own tokens). Without a resource indicator the OP
      // keeps only the scopes it knows (`scopes` below), e.g. `api:read`; others are dropped.
      clientCredentials: { enabled: true },
      // RFC 9126 at /request; off unless asked for, so the default flow keeps its parameters
      // in the front channel (tests read them there).
      pushedAuthorizationRequests: {
        enabled: PAR !== 'off',
        requirePushedAuthorizationRequests: PAR === 'required',
      },
      // FAPI 2.0 Security Profile checks. oidc-provider 9.13 does not make sender-constrained
      // tokens (DPoP/mTLS) mandatory under it; Ward's DPoP comes in a later change.
      ...(FAPI ? { fapi: { enabled: true, profile: '2.0' } } : {}),
      ...(process.env.AT_FORMAT === 'jwt' ? {
        resourceIndicators: {
          enabled: true,
          defaultResource: () => API_RESOURCE,
          useGrantedResource: () => true,
          getResourceServerInfo: (ctx, resourceIndicator) => ({
            scope: 'openid email profile offline_access api:read',
            audience: resourceIndicator,
            accessTokenTTL: AT_TTL,
            accessTokenFormat: 'jwt',
          }),
        },
      } : {}),
      ...(RESOURCES.length ? { resourceIndicators: resourceIndicators() } : {}), // RESOURCES below
    },
    // The default policy drops offline_access unless prompt=consent is sent; this issues a
    // refresh token on every code exchange for clients allowed the refresh_token grant.
    ...(process.env.ALWAYS_REFRESH === '1' ? {
      issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    } : {}),
    rotateRefreshToken: true, // every refresh returns a new refresh token
    clientBasedCORS: () => false, // the BFF talks to the OP server-side only
    ttl: {
      AccessToken: AT_TTL,
      ClientCredentials: AT_TTL,
      AuthorizationCode: 60,
      IdToken: IDT_TTL,
      RefreshToken: RT_TTL,
      Interaction: 600,
      Session: 86400,
      Grant: 86400,
    },
    // oidc-provider 9 blocks outbound fetches to loopback/private IPs (SSRF guard); drop its
    // dispatcher so back-channel logout can reach a BFF on 127.0.0.1.
    ...(process.env.KEEP_SSRF_GUARD === '1' ? {} : {
      fetch: (url, options) => { delete options.dispatcher; return globalThis.fetch(url, options); },
    }),
  };
}

// oidc-provider accepts client_secret_basic and client_secret_post interchangeably for a client
// registered with either. Hold the client to its registered method, so a test can tell which one
// the BFF really uses: with `client_secret_post`, an Authorization header is refused; with
// `client_secret_basic`, its absence is. (Header-only check: the body is left to oidc-provider.)
// With private_key_jwt an Authorization header is refused too (the assertion is the one credential).
const CLIENT_AUTH_PATHS = ['/token', '/token/revocation', '/token/introspection', '/request'];
async function strictClientAuth(ctx, next) {
  if (ctx.method === 'POST' && CLIENT_AUTH_PATHS.includes(ctx.path)) {
    const basic = /^basic /i.test(ctx.get('authorization'));
    if (basic !== (CLIENT_AUTH === 'client_secret_basic')) {
      ctx.status = 401;
      ctx.set('cache-control', 'no-store');
      ctx.body = { error: 'invalid_client', error_description: `client must authenticate with ${CLIENT_AUTH}` };
      return;
    }
  }
  await next();
}

// ---------------------------------------------------------------------------------------------
// TEST-ONLY HOOKS (TEST_HOOKS=1). They let integration tests make the OP misbehave on purpose.
//   POST /__test/mode        {"idToken": "<mutation>"}  how later /token responses' id_token is made
//   POST /__test/fail-token  {"status": 500}            later /token requests fail; {"status": 0} resets;
//                            {"status": 500, "times": 1} only the next one (N) fail
//   GET  /__test/stats       {"tokenRequests", "revocations", "parRequests"}
//   POST /__test/sign        {"claims": {...}, "header": {...}}  -> {"token"}: the claims signed
//                            with the OP's key (header defaults: RS256, its kid, typ logout+jwt;
//                            a null header value removes it), to craft back-channel logout tokens
// ---------------------------------------------------------------------------------------------
const ID_TOKEN_MODES = [
  'none', 'bad-signature', 'unknown-kid', 'rotated-key', 'wrong-aud', 'wrong-iss', 'wrong-nonce',
  'expired', 'future-iat', 'no-nonce', 'alg-none', 'azp-mismatch', 'omit',
];

function testHooks() {
  const state = {
    idTokenMode: 'none', failStatus: 0, failTimes: 0, tokenRequests: 0, revocations: 0, parRequests: 0,
  };
  let rotated; // { privateKey, publicJwk } once `rotated-key` has been set: /jwks serves it from then on
  let unknown; // a key whose public half is never published

  const freshKey = (kid) => {
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const publicJwk = { ...pair.publicKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' };
    return { privateKey: pair.privateKey, publicJwk };
  };

  const readJson = async (req) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const text = Buffer.concat(chunks).toString('utf8');
    return text ? JSON.parse(text) : {};
  };

  const sign = (payload, header, key) => new SignJWT(payload).setProtectedHeader(header).sign(key);

  async function mutate(idToken, mode) {
    const header = decodeProtectedHeader(idToken);
    const claims = decodeJwt(idToken);
    const now = Math.floor(Date.now() / 1000);
    const resign = (c, key = privateKey, kid = header.kid) => sign(c, { ...header, kid }, key);
    switch (mode) {
      case 'bad-signature': {
        const [h, p, s] = idToken.split('.');
        const sig = base64url.decode(s);
        for (let i = 0; i < 8; i += 1) sig[i] ^= 0xff;
        return `${h}.${p}.${base64url.encode(sig)}`;
      }
      case 'unknown-kid':
        unknown ??= freshKey('unknown-kid');
        return resign(claims, unknown.privateKey, 'unknown-kid');
      case 'rotated-key':
        return resign(claims, rotated.privateKey, 'rotated');
      case 'wrong-aud': return resign({ ...claims, aud: 'not-the-client' });
      case 'wrong-iss': return resign({ ...claims, iss: 'http://wrong-issuer.invalid' });
      case 'wrong-nonce': return resign({ ...claims, nonce: 'not-the-nonce' });
      case 'expired': return resign({ ...claims, iat: now - 7200, exp: now - 3600 });
      case 'future-iat': return resign({ ...claims, iat: now + 3600, exp: now + 3600 + IDT_TTL });
      case 'no-nonce': {
        const rest = { ...claims };
        delete rest.nonce;
        return resign(rest);
      }
      case 'alg-none': {
        const enc = (o) => base64url.encode(JSON.stringify(o));
        return `${enc({ alg: 'none', typ: 'JWT' })}.${enc(claims)}.`;
      }
      case 'azp-mismatch': return resign({ ...claims, aud: [CLIENT_ID, 'other'], azp: 'other' });
      case 'omit': return undefined; // the answer carries no id_token at all
      default: return idToken;
    }
  }

  return async function testHookMiddleware(ctx, next) {
    if (ctx.path.startsWith('/__test/')) {
      try {
        ctx.state.testBody = ctx.method === 'POST' ? await readJson(ctx.req) : {};
      } catch {
        ctx.status = 400;
        ctx.body = { error: 'body must be JSON' };
        return;
      }
    }
    if (ctx.path === '/__test/mode' && ctx.method === 'POST') {
      const mode = ctx.state.testBody.idToken;
      if (!ID_TOKEN_MODES.includes(mode)) {
        ctx.status = 400;
        ctx.body = { error: `unknown idToken mode; one of ${ID_TOKEN_MODES.join(', ')}` };
        return;
      }
      if (mode === 'rotated-key') rotated ??= freshKey('rotated');
      state.idTokenMode = mode;
      console.log(`test-hook: idToken mode = ${mode}`);
      ctx.body = { idToken: mode };
      return;
    }
    if (ctx.path === '/__test/fail-token' && ctx.method === 'POST') {
      const { status, times } = ctx.state.testBody;
      state.failStatus = Number(status) || 0;
      state.failTimes = times === undefined ? Infinity : Number(times) || 0;
      console.log(`test-hook: fail-token status = ${state.failStatus} times = ${state.failTimes}`);
      ctx.body = { status: state.failStatus };
      return;
    }
    if (ctx.path === '/__test/sign' && ctx.method === 'POST') {
      const { claims = {}, header = {} } = ctx.state.testBody;
      const protectedHeader = { alg: 'RS256', kid: SIGNING_KID, typ: 'logout+jwt', ...header };
      for (const [name, value] of Object.entries(protectedHeader)) {
        if (value === null) delete protectedHeader[name];
      }
      ctx.body = { token: await sign(claims, protectedHeader, privateKey) };
      return;
    }
    if (ctx.path === '/__test/stats' && ctx.method === 'GET') {
      ctx.body = {
        tokenRequests: state.tokenRequests, revocations: state.revocations, parRequests: state.parRequests,
      };
      return;
    }

    const isToken = ctx.path === '/token' && ctx.method === 'POST';
    if (isToken) {
      state.tokenRequests += 1;
      if (state.failStatus && state.failTimes > 0) {
        state.failTimes -= 1;
        ctx.status = state.failStatus;
        ctx.set('cache-control', 'no-store');
        ctx.body = { error: 'server_error', error_description: 'test hook: forced token failure' };
        return;
      }
    }
    if (ctx.path === '/token/revocation' && ctx.method === 'POST') state.revocations += 1;
    if (ctx.path === '/request' && ctx.method === 'POST') state.parRequests += 1;

    await next();

    if (isToken && ctx.status === 200 && ctx.body?.id_token && state.idTokenMode !== 'none') {
      ctx.body = { ...ctx.body, id_token: await mutate(ctx.body.id_token, state.idTokenMode) };
    }
    if (ctx.path === '/jwks' && ctx.method === 'GET' && rotated && ctx.body?.keys) {
      ctx.body = { keys: [...ctx.body.keys, rotated.publicJwk] };
      ctx.type = 'application/jwk-set+json; charset=utf-8';
    }
  };
}
// ------------------------------------------------------------------------- end of test hooks

// ---------------------------------------------------------------------------------------------
// PASSWORD_GRANT=1: the resource-owner password grant (RFC 6749 §4.3), which oidc-provider does
// not ship, registered with `provider.registerGrantType`. Only PASSWORD_USER with
// PASSWORD_SECRET is accepted (anything else: `invalid_grant`); the tokens come from
// oidc-provider's own models (Grant, AccessToken, IdToken), so /me and /jwks serve them as any.
// The grant carries no nonce, so the ID token has none. No refresh token is issued.
// ---------------------------------------------------------------------------------------------
function passwordGrant(provider) {
  return async function passwordGrantHandler(ctx) {
    const { client, params } = ctx.oidc;
    if (params.username !== PASSWORD_USER || params.password !== PASSWORD_SECRET) {
      throw new errors.InvalidGrant('invalid resource owner credentials');
    }
    const known = new Set(['openid', 'email', 'profile']);
    const scope = [...new Set(['openid', ...String(params.scope || '').split(' ')])]
      .filter((s) => known.has(s)).join(' ');
    const grant = new provider.Grant({ accountId: PASSWORD_USER, clientId: client.clientId });
    grant.addOIDCScope(scope);
    const grantId = await grant.save();
    const at = new provider.AccessToken({
      accountId: PASSWORD_USER, client, grantId, gty: 'password', scope,
    });
    const accessToken = await at.save();
    const account = await findAccount(ctx, PASSWORD_USER);
    const claims = await account.claims('id_token', scope, {}, []);
    const idToken = new provider.IdToken(claims, { ctx });
    idToken.scope = scope;
    idToken.set('amr', ['pwd']);
    idToken.set('auth_time', Math.floor(Date.now() / 1000));
    ctx.body = {
      access_token: accessToken,
      token_type: 'Bearer',
      expires_in: at.expiration,
      scope,
      id_token: await idToken.issue({ use: 'idtoken' }),
    };
    console.log(`password grant: tokens issued for ${PASSWORD_USER}`);
  };
}

// ---------------------------------------------------------------------------------------------
// MTLS=1: RFC 8705 mutual TLS. The https server asks every client for a certificate (and lets
// those without one in: browsers use the same port); oidc-provider's features.mTLS takes the
// peer certificate of the connection. The client is registered for tls_client_auth (PKI: the
// certificate must chain to MTLS_CA and carry the DNS SAN MTLS_SAN_DNS) with certificate-bound
// access tokens. With TEST_HOOKS=1, GET /__test/mtls lists what each client-authenticated call
// carried (a certificate's x5t#S256, a secret, an assertion, a Basic header; never a value).
// ---------------------------------------------------------------------------------------------
if (MTLS && !(process.env.TLS_CERT && process.env.TLS_KEY)) {
  console.error('MTLS=1 needs TLS_CERT and TLS_KEY (client certificates travel only over TLS)');
  process.exit(2);
}
const MTLS_SAN_DNS = process.env.MTLS_SAN_DNS || 'ward-client.test';
const mtlsServerOptions = () => (MTLS ? {
  requestCert: true, rejectUnauthorized: false, ...(process.env.MTLS_CA ? { ca: readFileSync(process.env.MTLS_CA) } : {}),
} : {});
function peerCertificate(ctx) {
  const peer = ctx.socket.getPeerCertificate?.(true);
  return peer?.raw ? new X509Certificate(peer.raw) : undefined;
}
function withMtls(config, issuer) {
  if (!MTLS) return config;
  if (process.env.MTLS_ALIAS_HOST) { // RFC 8705 §5: the same endpoints under another host name
    const alias = new URL(issuer);
    alias.hostname = process.env.MTLS_ALIAS_HOST;
    const at = (path) => new URL(path, alias).href;
    config.discovery = {
      ...config.discovery,
      mtls_endpoint_aliases: {
        token_endpoint: at('/token'), revocation_endpoint: at('/token/revocation'),
        introspection_endpoint: at('/token/introspection'), userinfo_endpoint: at('/me'),
        pushed_authorization_request_endpoint: at('/request'),
      },
    };
  }
  Object.assign(config.clients[0], {
    tls_client_auth_san_dns: MTLS_SAN_DNS, tls_client_certificate_bound_access_tokens: true,
  });
  config.clientAuthMethods = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'tls_client_auth'];
  config.features.mTLS = {
    enabled: true, certificateBoundAccessTokens: true, tlsClientAuth: true,
    getCertificate: peerCertificate,
    certificateAuthorized: (ctx) => ctx.socket.authorized === true,
    certificateSubjectMatches: (ctx, property, expected) => property === 'tls_client_auth_san_dns'
      && (peerCertificate(ctx)?.subjectAltName || '').split(', ').includes(`DNS:${expected}`),
  };
  return config;
}
const mtlsSeen = [];
async function mtlsObserver(ctx, next) {
  if (ctx.path === '/__test/mtls' && ctx.method === 'GET') {
    ctx.body = { calls: mtlsSeen };
    return;
  }
  await next();
  if (ctx.method === 'POST' && CLIENT_AUTH_PATHS.includes(ctx.path)) {
    const cert = peerCertificate(ctx);
    const params = ctx.oidc?.params || {};
    mtlsSeen.push({ // presence only, never a value
      path: ctx.path,
      host: ctx.hostname,
      status: ctx.status,
      x5t: cert ? hash('sha256', cert.raw, 'base64url') : null,
      authorized: ctx.socket.authorized === true,
      clientId: params.client_id ?? null,
      secret: params.client_secret !== undefined,
      assertion: params.client_assertion !== undefined,
      basic: /^basic /i.test(ctx.get('authorization')),
    });
  }
}
// ------------------------------------------------------------------------------- end of MTLS
// DPOP=1: RFC 9449 sender-constrained tokens (features.dPoP). DPOP_NONCE=1: every proof must
// carry a nonce the OP issued (`DPoP-Nonce`, answered with `use_dpop_nonce` otherwise). With
// FAPI=2.0 the client is registered with `dpop_bound_access_tokens: true`: a token request
// without a proof is refused.
// ---------------------------------------------------------------------------------------------
function withDpop(config) {
  if (process.env.DPOP !== '1') return config;
  config.features.dPoP = {
    enabled: true,
    ...(process.env.DPOP_NONCE === '1' ? { nonceSecret: randomBytes(32), requireNonce: () => true } : {}),
  };
  if (FAPI) config.clients = config.clients.map((client) => ({ ...client, dpop_bound_access_tokens: true }));
  return config;
}
// ------------------------------------------------------------------------- end of DPOP=1
// RESOURCES=<uri>,<uri>: RFC 8707 resource servers. An authorization request may name any of them
// (`resource`, repeated); a token request naming one (refresh_token or client_credentials grant)
// gets a JWT access token with aud = that resource only; one naming none gets the plain token
// (for userinfo; `urn:bff:api` under AT_FORMAT=jwt). Any other resource is `invalid_target`, and
// so is one the grant does not cover. Each token request naming a resource logs
// `resource-token <uri> ok|<error>` (tests count them).
// ---------------------------------------------------------------------------------------------
const RESOURCES = (process.env.RESOURCES || '').split(',').map((r) => r.trim()).filter(Boolean);

function resourceIndicators() {
  const jwtDefault = process.env.AT_FORMAT === 'jwt';
  return {
    enabled: true,
    // A token request naming no resource gets the userinfo token (opaque), whatever the grant
    // covers: the session's own token stays as it was without RESOURCES.
    defaultResource: (ctx, client, oneOf) => (oneOf ? undefined : (jwtDefault ? API_RESOURCE : undefined)),
    useGrantedResource: () => false,
    getResourceServerInfo: (ctx, resourceIndicator) => {
      if (!RESOURCES.includes(resourceIndicator) && !(jwtDefault && resourceIndicator === API_RESOURCE)) {
        throw new errors.InvalidTarget();
      }
      return {
        scope: 'openid email profile offline_access api:read',
        audience: resourceIndicator,
        accessTokenTTL: AT_TTL,
        accessTokenFormat: 'jwt',
      };
    },
  };
}

function logResourceTokens(provider) {
  const resourceOf = (ctx) => ctx.oidc?.params?.resource;
  provider.on('grant.success', (ctx) => {
    if (resourceOf(ctx)) console.log(`resource-token ${resourceOf(ctx)} ok`);
  });
  provider.on('grant.error', (ctx, err) => {
    if (resourceOf(ctx)) console.log(`resource-token ${resourceOf(ctx)} ${err.error ?? err.name}`);
  });
}

// TOKEN_EXCHANGE=1 (with RESOURCES): RFC 8693 token exchange, registered with
// `provider.registerGrantType`: an access token of this client (`subject_token`, type
// access_token) for a JWT access token of the same user and grant for one of RESOURCES
// (`resource`; anything else `invalid_target`). Logs `token-exchange <uri>` for each one issued.
const TOKEN_EXCHANGE = process.env.TOKEN_EXCHANGE === '1' && RESOURCES.length > 0;
const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

function tokenExchange(provider) {
  return async function tokenExchangeHandler(ctx) {
    const { client, params } = ctx.oidc;
    if (params.subject_token_type !== ACCESS_TOKEN_TYPE) {
      throw new errors.InvalidRequest('subject_token_type must be an access token');
    }
    const subject = await provider.AccessToken.find(String(params.subject_token || ''));
    if (!subject || subject.isExpired || subject.clientId !== client.clientId) {
      throw new errors.InvalidGrant('subject token is invalid');
    }
    const resource = params.resource;
    if (typeof resource !== 'string' || !RESOURCES.includes(resource)) throw new errors.InvalidTarget();
    const at = new provider.AccessToken({
      accountId: subject.accountId, client, grantId: subject.grantId, gty: 'token_exchange', scope: subject.scope,
    });
    at.resourceServer = new provider.ResourceServer(resource, {
      scope: subject.scope || 'openid', audience: resource, accessTokenTTL: AT_TTL, accessTokenFormat: 'jwt',
    });
    ctx.body = {
      access_token: await at.save(), issued_token_type: ACCESS_TOKEN_TYPE, token_type: 'Bearer', expires_in: at.expiration,
    };
    console.log(`token-exchange ${resource}`);
  };
}
// ------------------------------------------------------------------------ end of RESOURCES

// Bind first so OP_PORT=0 can resolve to the real port before the issuer is fixed.
const TLS = process.env.TLS_CERT && process.env.TLS_KEY;
const server = TLS
  ? createHttpsServer({ cert: readFileSync(process.env.TLS_CERT), key: readFileSync(process.env.TLS_KEY), ...mtlsServerOptions() })
  : createHttpServer();
server.listen(PORT, HOST, () => {
  const { port } = server.address();
  const issuer = `${TLS ? 'https' : 'http'}://${HOST}:${port}`;
  const provider = new Provider(issuer, withDpop(withMtls(configuration(), issuer)));
  if (process.env.TEST_HOOKS === '1') { // first, so the counters see every request
    provider.use(testHooks());
    console.log('test-hook: TEST_HOOKS=1, /__test/* endpoints enabled (test use only)');
  }
  if (MTLS && process.env.TEST_HOOKS === '1') provider.use(mtlsObserver);
  provider.use(strictClientAuth);
  if (RESOURCES.length) logResourceTokens(provider);
  if (TOKEN_EXCHANGE) {
    provider.registerGrantType(TOKEN_EXCHANGE_GRANT, tokenExchange(provider),
      ['subject_token', 'subject_token_type', 'requested_token_type', 'resource', 'audience']);
  }
  if (PASSWORD_GRANT) {
    provider.registerGrantType('password', passwordGrant(provider), ['username', 'password', 'scope']);
    console.log('password grant: PASSWORD_GRANT=1, grant_type=password registered (test use only)');
  }
  provider.on('backchannel.success', (ctx, client, accountId, sid) => console.log(`backchannel.success client=${client.clientId} sub=${accountId} sid=${sid}`));
  provider.on('backchannel.error', (ctx, err, client) => console.log(`backchannel.error client=${client.clientId}: ${err.message}`));
  provider.on('grant.error', (ctx, err) => console.log(`grant.error ${err.name}: ${err.message} ${err.error_detail ?? ''}`));
  for (const name of ['pushed_authorization_request.error', 'revocation.error', 'authorization.error']) {
    provider.on(name, (ctx, err) => console.log(`${name} ${err.name}: ${err.message} ${err.error_detail ?? ''}`));
  }
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  server.on('request', provider.callback());
  console.log(`READY ${issuer}`);
});
server.on('error', (err) => {
  console.error(`listen failed: ${err.message}`);
  process.exit(1);
});

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)));
if (process.env.EXIT_WITH_STDIN === '1') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('close', () => process.exit(0));
  process.stdin.resume();
}
