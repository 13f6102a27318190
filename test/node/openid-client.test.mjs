// openid-client 6 against the real countersign binary: discovery, CIBA poll mode with RAR
// authorization_details, approved and denied by the terminal authenticator.

import assert from 'node:assert/strict';
import { after, before } from 'node:test';

import * as client from 'openid-client';

import { CLIENT_ID, CLIENT_SECRET, Server, TRADE_ORDER, USER, bindingMessage, serverTest } from './lib/harness.mjs';

let server;
let config;

before(async () => {
  server = await Server.start();
  await server.enrollAlice();
  config = await client.discovery(new URL(server.issuer), CLIENT_ID, CLIENT_SECRET, undefined, {
    execute: [client.allowInsecureRequests],
  });
});

after(async () => {
  await server?.cleanup();
});

serverTest('openid-client: discovery advertises CIBA and RAR', () => server, () => {
  const md = config.serverMetadata();
  assert.equal(md.issuer, server.issuer);
  assert.equal(md.backchannel_authentication_endpoint, `${server.issuer}bc-authorize`);
  assert.equal(md.token_endpoint, `${server.issuer}oauth/token`);
  assert.ok(md.grant_types_supported.includes('urn:openid:params:grant-type:ciba'));
  assert.ok(md.backchannel_token_delivery_modes_supported.includes('poll'));
  assert.ok(md.authorization_details_types_supported.includes('trade_order'));
});

serverTest('openid-client: CIBA approved with authorization_details', () => server, async () => {
  // Also verify the ID token's signature against the JWKS (openid-client skips it by default).
  client.enableNonRepudiationChecks(config);
  const msg = bindingMessage('Buy 10 NVDA');
  const approval = server.decide('approve', msg);

  const auth = await client.initiateBackchannelAuthentication(config, {
    scope: 'openid',
    login_hint: USER,
    binding_message: msg,
    authorization_details: JSON.stringify([TRADE_ORDER]),
  });
  assert.equal(typeof auth.auth_req_id, 'string');
  assert.equal(auth.interval, 1);
  assert.ok(auth.expires_in > 0);

  const tokens = await client.pollBackchannelAuthenticationGrant(config, auth);
  const decided = await approval;
  assert.match(decided.stdout, /^approved /);

  assert.equal(typeof tokens.access_token, 'string');
  assert.ok(tokens.access_token.length > 0);
  assert.equal(tokens.token_type, 'bearer'); // openid-client lower-cases it
  assert.equal(typeof tokens.expires_in, 'number');
  assert.deepEqual(tokens.authorization_details, [{ ...TRADE_ORDER, order_type: 'market' }]);
  const claims = tokens.claims();
  assert.equal(claims.sub, USER);
  assert.equal(claims.iss, server.issuer);
  assert.equal(claims.aud, CLIENT_ID);
});

serverTest('openid-client: CIBA denied surfaces access_denied', () => server, async () => {
  const msg = bindingMessage('Sell everything');
  const denial = server.decide('deny', msg);
  const auth = await client.initiateBackchannelAuthentication(config, {
    scope: 'openid',
    login_hint: USER,
    binding_message: msg,
    authorization_details: JSON.stringify([{ ...TRADE_ORDER, side: 'SELL', quantity: 1000 }]),
  });
  await assert.rejects(client.pollBackchannelAuthenticationGrant(config, auth), (err) => {
    assert.ok(err instanceof client.ResponseBodyError, `expected ResponseBodyError, got ${err}`);
    assert.equal(err.error, 'access_denied');
    assert.equal(err.status, 400);
    return true;
  });
  const decided = await denial;
  assert.match(decided.stdout, /^denied /);
});

/** Asserts that initiating with these parameters fails with this OAuth error. */
async function assertInitiateFails(params, error) {
  await assert.rejects(
    client.initiateBackchannelAuthentication(config, { scope: 'openid', binding_message: bindingMessage('bad'), ...params }),
    (err) => {
      assert.ok(err instanceof client.ResponseBodyError, `expected ResponseBodyError, got ${err}`);
      assert.equal(err.error, error, err.error_description);
      assert.equal(err.status, 400);
      return true;
    },
  );
}

serverTest('openid-client: bad requests surface the CIBA and RAR error codes', () => server, async () => {
  await assertInitiateFails(
    { login_hint: USER, authorization_details: JSON.stringify([{ type: 'wire_transfer', amount: 1 }]) },
    'invalid_authorization_details',
  );
  await assertInitiateFails(
    { login_hint: USER, authorization_details: JSON.stringify([{ ...TRADE_ORDER, quantity: 0 }]) },
    'invalid_authorization_details',
  );
  await assertInitiateFails({ login_hint: 'nobody@example.com' }, 'unknown_user_id');
});
