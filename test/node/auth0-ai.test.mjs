// @auth0/ai 5 (through the auth0 Node SDK) against the real countersign binary over HTTPS:
// @auth0/ai always calls https://<domain>/bc-authorize and /oauth/token and sends Auth0's iss_sub
// login_hint, so this file runs a TLS server with a self-signed certificate and drives @auth0/ai in
// a child Node process started with NODE_EXTRA_CA_CERTS.

import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';

import { CLIENT_ID, CLIENT_SECRET, Server, TRADE_ORDER, USER, USER_WITHOUT_DEVICE, bindingMessage, run, serverTest } from './lib/harness.mjs';

const driver = fileURLToPath(new URL('./lib/auth0-ai-driver.cjs', import.meta.url));

let server;

before(async () => {
  server = await Server.start({ tls: true });
  await server.enrollAlice();
});

after(async () => {
  await server?.cleanup();
});

async function runDriver(input) {
  const r = await run(process.execPath, [driver], {
    env: { NODE_EXTRA_CA_CERTS: server.certFile, AUTH0_AI_DRIVER: JSON.stringify(input) },
    timeoutMs: 30_000,
  });
  server.transcript.push({ args: ['(node lib/auth0-ai-driver.cjs)'], ...r });
  assert.equal(r.code, 0, `driver failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

function driverInput(msg, details, userID = USER) {
  return {
    domain: server.domain, // 127.0.0.1:PORT, so the login_hint iss is https://127.0.0.1:PORT/
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    userID,
    bindingMessage: msg,
    scopes: ['openid'],
    authorizationDetails: details,
  };
}

/** Checks the requests @auth0/ai sent: Auth0 paths, iss_sub login_hint, empty audience, ... */
function assertWire(wire, msg) {
  const [authorize, ...polls] = wire;
  assert.equal(authorize.method, 'POST');
  assert.equal(authorize.url, `${server.issuer}bc-authorize`);
  assert.equal(authorize.status, 200);
  assert.deepEqual(JSON.parse(authorize.body.login_hint), { format: 'iss_sub', iss: server.issuer, sub: USER });
  assert.equal(authorize.body.binding_message, msg);
  assert.equal(authorize.body.audience, '');
  assert.equal(authorize.body.requested_expiry, '300');
  assert.equal(authorize.body.scope, 'openid');
  assert.equal(authorize.body.client_id, CLIENT_ID);
  assert.ok(polls.length >= 1);
  for (const p of polls) {
    assert.equal(p.url, `${server.issuer}oauth/token`);
    assert.equal(p.body.grant_type, 'urn:openid:params:grant-type:ciba');
  }
  // Polls are paced by interval (1 s here): no slow_down, no tight loop.
  assert.ok(polls.every((p) => p.status === 200 || p.status === 400));
  assert.ok(polls.length <= 5, `${polls.length} polls`);
}

serverTest('@auth0/ai: issuer matches the domain @auth0/ai builds', () => server, async () => {
  assert.equal(server.issuer, `https://${server.domain}/`);
  const res = await run(process.execPath, ['-e', `fetch(${JSON.stringify(server.issuer + '.well-known/openid-configuration')}).then(r => r.json()).then(j => console.log(JSON.stringify(j)))`], {
    env: { NODE_EXTRA_CA_CERTS: server.certFile },
  });
  assert.equal(res.code, 0, res.stderr);
  const md = JSON.parse(res.stdout);
  assert.equal(md.issuer, server.issuer);
  assert.equal(md.backchannel_authentication_endpoint, `${server.issuer}bc-authorize`);
  assert.equal(md.token_endpoint, `${server.issuer}oauth/token`);
});

serverTest('@auth0/ai: async authorization approved returns the credentials', () => server, async () => {
  const msg = bindingMessage('Buy 10 NVDA');
  const approval = server.decide('approve', msg);
  const out = await runDriver(driverInput(msg, [TRADE_ORDER]));
  assert.match((await approval).stdout, /^approved /);

  assert.equal(out.ok, true, `authorization failed: ${JSON.stringify(out.error)}`);
  assertWire(out.wire, msg);
  assert.equal(out.authResponse.interval, 1);
  assert.equal(typeof out.authResponse.id, 'string');
  const cred = out.credentials;
  assert.equal(cred.tokenType, 'Bearer');
  assert.equal(typeof cred.accessToken, 'string');
  assert.equal(typeof cred.idToken, 'string');
  assert.equal(typeof cred.expiresIn, 'number');
  assert.deepEqual(cred.scopes, ['openid']);
  assert.deepEqual(cred.authorizationDetails, [{ ...TRADE_ORDER, order_type: 'market' }]);
  const idClaims = JSON.parse(Buffer.from(cred.idToken.split('.')[1], 'base64url'));
  assert.equal(idClaims.sub, USER);
  assert.equal(idClaims.iss, server.issuer);
  assert.equal(idClaims.aud, CLIENT_ID);
  const atClaims = JSON.parse(Buffer.from(cred.accessToken.split('.')[1], 'base64url'));
  assert.equal(atClaims.sub, USER);
});

serverTest('@auth0/ai: denied surfaces AccessDeniedInterrupt (access_denied)', () => server, async () => {
  const msg = bindingMessage('Sell 1000 NVDA');
  const denial = server.decide('deny', msg);
  const out = await runDriver(driverInput(msg, [{ ...TRADE_ORDER, side: 'SELL', quantity: 1000 }]));
  assert.match((await denial).stdout, /^denied /);
  assert.equal(out.ok, false);
  assertWire(out.wire, msg);
  assert.equal(out.error.class, 'AccessDeniedInterrupt', JSON.stringify(out.error));
  assert.equal(out.error.isAccessDeniedInterrupt, true);
  assert.equal(out.error.code, 'ASYNC_AUTHORIZATION_ACCESS_DENIED');
});

serverTest('@auth0/ai: a user without an authenticator surfaces UserDoesNotHavePushNotificationsInterrupt', () => server, async () => {
  // @auth0/ai reads every invalid_request from /bc-authorize as "no authenticator enrolled".
  const out = await runDriver(driverInput(bindingMessage('Buy 1 NVDA'), [TRADE_ORDER], USER_WITHOUT_DEVICE));
  assert.equal(out.ok, false);
  assert.equal(out.error.class, 'UserDoesNotHavePushNotificationsInterrupt', JSON.stringify(out.error));
  assert.equal(out.wire.length, 1);
  assert.equal(out.wire[0].status, 400);
  assert.deepEqual(JSON.parse(out.wire[0].body.login_hint), { format: 'iss_sub', iss: server.issuer, sub: USER_WITHOUT_DEVICE });
});
