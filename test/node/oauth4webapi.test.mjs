// oauth4webapi 3 against the real countersign binary: discovery, CIBA poll mode with a poll loop
// that honours interval and slow_down, RAR authorization_details, JWT access token (RFC 9068)
// checked against the JWKS with jose and with oauth4webapi's own validateJwtAccessToken, token
// introspection, and a denied request.

import assert from 'node:assert/strict';
import { after, before } from 'node:test';

import * as jose from 'jose';
import * as oauth from 'oauth4webapi';

import { CLIENT_ID, CLIENT_SECRET, Server, TRADE_ORDER, USER, bindingMessage, serverTest } from './lib/harness.mjs';

const insecure = { [oauth.allowInsecureRequests]: true };
const client = { client_id: CLIENT_ID };
const clientAuth = oauth.ClientSecretPost(CLIENT_SECRET);
const sleep = (s) => new Promise((r) => setTimeout(r, s * 1000));

let server;
let as;

before(async () => {
  server = await Server.start();
  await server.enrollAlice();
  const issuer = new URL(server.issuer);
  as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, insecure));
});

after(async () => {
  await server?.cleanup();
});

async function initiate(msg, details = [TRADE_ORDER]) {
  const params = new URLSearchParams({
    scope: 'openid',
    login_hint: USER,
    binding_message: msg,
    authorization_details: JSON.stringify(details),
  });
  const res = await oauth.backchannelAuthenticationRequest(as, client, clientAuth, params, insecure);
  assert.equal(res.status, 200);
  return oauth.processBackchannelAuthenticationResponse(as, client, res);
}

/** One token request; resolves with the token response or rejects with the library's error. */
async function pollOnce(authReqId) {
  const res = await oauth.backchannelAuthenticationGrantRequest(as, client, clientAuth, authReqId, insecure);
  return oauth.processBackchannelAuthenticationGrantResponse(as, client, res);
}

/**
 * Polls until the request is decided: waits `interval` seconds before each request, and on
 * slow_down adds 5 s (CIBA section 11) or takes the server's Retry-After when that is longer.
 * Returns the tokens and the log of answers ('authorization_pending', 'slow_down', 'tokens').
 */
async function pollUntilDecided(auth, { interval = auth.interval ?? 5, log = [] } = {}) {
  const deadline = Date.now() + auth.expires_in * 1000;
  for (;;) {
    await sleep(interval);
    assert.ok(Date.now() < deadline, 'request expired while polling');
    try {
      const tokens = await pollOnce(auth.auth_req_id);
      log.push('tokens');
      return { tokens, log };
    } catch (err) {
      if (!(err instanceof oauth.ResponseBodyError)) throw err;
      log.push(err.error);
      if (err.error === 'authorization_pending') continue;
      if (err.error === 'slow_down') {
        const retryAfter = Number(err.response.headers.get('retry-after')) || 0;
        interval = Math.max(interval + 5, retryAfter);
        continue;
      }
      throw err;
    }
  }
}

async function assertTokens(tokens) {
  assert.equal(typeof tokens.access_token, 'string');
  assert.equal(tokens.token_type, 'bearer'); // oauth4webapi lower-cases it
  assert.equal(typeof tokens.expires_in, 'number');
  assert.equal(tokens.scope, 'openid');
  assert.deepEqual(tokens.authorization_details, [{ ...TRADE_ORDER, order_type: 'market' }]);

  const idClaims = oauth.getValidatedIdTokenClaims(tokens);
  assert.equal(idClaims.sub, USER);
  assert.equal(idClaims.iss, server.issuer);
  assert.equal(idClaims.aud, CLIENT_ID);

  // Signatures against the server's JWKS, with jose.
  const jwks = jose.createRemoteJWKSet(new URL(as.jwks_uri));
  const at = await jose.jwtVerify(tokens.access_token, jwks, {
    issuer: server.issuer,
    typ: 'at+jwt',
    requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id'],
  });
  assert.equal(at.protectedHeader.typ, 'at+jwt');
  assert.equal(at.payload.sub, USER);
  assert.equal(at.payload.client_id, CLIENT_ID);
  assert.equal(at.payload.scope, 'openid');
  assert.deepEqual(at.payload.authorization_details, [{ ...TRADE_ORDER, order_type: 'market' }]);
  const idt = await jose.jwtVerify(tokens.id_token, jwks, {
    issuer: server.issuer,
    audience: CLIENT_ID,
    algorithms: as.id_token_signing_alg_values_supported,
  });
  assert.equal(idt.payload.sub, USER);

  // And as a resource server would, with oauth4webapi's RFC 9068 validation (signature from the
  // jwks_uri, typ at+jwt, required claims, iss, aud). Without resource/audience the token's
  // audience is the issuer.
  const request = new Request('http://127.0.0.1/api/orders', {
    headers: { authorization: `Bearer ${tokens.access_token}` },
  });
  const rsClaims = await oauth.validateJwtAccessToken(as, request, server.issuer, insecure);
  assert.equal(rsClaims.sub, USER);
  assert.equal(rsClaims.client_id, CLIENT_ID);
}

serverTest('oauth4webapi: CIBA approved, JWT access token verified against JWKS', () => server, async () => {
  const msg = bindingMessage('Buy 10 NVDA');
  const approval = server.decide('approve', msg);
  const auth = await initiate(msg);
  assert.equal(auth.interval, 1);
  const { tokens } = await pollUntilDecided(auth);
  assert.match((await approval).stdout, /^approved /);
  await assertTokens(tokens);

  // Introspection (RFC 7662) carries the authorization_details too (RFC 9396 section 9).
  const res = await oauth.introspectionRequest(as, client, clientAuth, tokens.access_token, insecure);
  const intro = await oauth.processIntrospectionResponse(as, client, res);
  assert.equal(intro.active, true);
  assert.equal(intro.sub, USER);
  assert.equal(intro.client_id, CLIENT_ID);
  assert.deepEqual(intro.authorization_details, [{ ...TRADE_ORDER, order_type: 'market' }]);

  // The request is redeemed once.
  await assert.rejects(pollOnce(auth.auth_req_id), (err) => {
    assert.ok(err instanceof oauth.ResponseBodyError, String(err));
    assert.equal(err.error, 'invalid_grant');
    return true;
  });
});

serverTest('oauth4webapi: slow_down grows the interval and the poll loop honours it', () => server, async () => {
  const msg = bindingMessage('Buy 1 NVDA slowly');
  const auth = await initiate(msg, [{ ...TRADE_ORDER, quantity: 1 }]);

  // The first poll is never too soon; one right after it is. (Polls back to back until the server
  // says slow_down, in case a loaded machine spaced two of them by more than the interval.)
  let slowDown;
  for (let i = 0; i < 5 && !slowDown; i++) {
    const err = await pollOnce(auth.auth_req_id).then(
      () => assert.fail('the request is pending, yet the token endpoint answered with tokens'),
      (e) => e,
    );
    assert.ok(err instanceof oauth.ResponseBodyError, String(err));
    assert.equal(err.status, 400);
    if (i > 0 && err.error === 'slow_down') slowDown = err;
    else assert.equal(err.error, 'authorization_pending');
  }
  assert.ok(slowDown, 'polling back to back never got slow_down');
  const retryAfter = Number(slowDown.response.headers.get('retry-after'));
  assert.ok(retryAfter >= auth.interval + 5, `Retry-After ${retryAfter} should be at least interval + 5`);

  // Decide before the next poll, so that the poll after the grown interval is the one that
  // collects the tokens.
  await server.decide('approve', msg);
  const { tokens, log } = await pollUntilDecided(auth, { interval: Math.max(auth.interval + 5, retryAfter) });
  assert.ok(!log.includes('slow_down'), `waiting the grown interval must not cause another slow_down: ${log}`);
  assert.equal(log.at(-1), 'tokens');
  assert.deepEqual(tokens.authorization_details, [{ ...TRADE_ORDER, quantity: 1, order_type: 'market' }]);
}, { timeout: 45_000 });

serverTest('oauth4webapi: CIBA denied surfaces access_denied', () => server, async () => {
  const msg = bindingMessage('Sell 1000 NVDA');
  const denial = server.decide('deny', msg);
  const auth = await initiate(msg, [{ ...TRADE_ORDER, side: 'SELL', quantity: 1000 }]);
  await assert.rejects(pollUntilDecided(auth), (err) => {
    assert.ok(err instanceof oauth.ResponseBodyError, `expected ResponseBodyError, got ${err}`);
    assert.equal(err.error, 'access_denied');
    assert.equal(err.status, 400);
    return true;
  });
  assert.match((await denial).stdout, /^denied /);
});
