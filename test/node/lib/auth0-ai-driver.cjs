// Runs one @auth0/ai async authorization (CIBA) against a countersign server and prints the outcome
// as one JSON line on stdout. Started by auth0-ai.test.mjs as a child process, because @auth0/ai
// always calls https://<domain> and Node reads NODE_EXTRA_CA_CERTS (the test's self-signed
// certificate) only at startup.
//
// CommonJS on purpose: the ESM build of @auth0/ai 5.1.1 cannot be imported by Node (its dist/esm
// files import relative paths without the .js extension), so require() it like most users do.
//
// Input: a JSON object in the AUTH0_AI_DRIVER env var:
//   {domain, clientId, clientSecret, userID, bindingMessage, authorizationDetails, scopes}

'use strict';

const { AsyncAuthorizerBase, getAsyncAuthorizationCredentials } = require('@auth0/ai/AsyncAuthorization');
const { MemoryStore } = require('@auth0/ai/stores');
const { AccessDeniedInterrupt, AsyncAuthorizationInterrupt } = require('@auth0/ai/interrupts');

// Record what goes on the wire (the auth0 SDK binds globalThis.fetch when the client is built), so
// that the test can check the requests @auth0/ai makes, not only the outcome.
const wire = [];
const realFetch = globalThis.fetch;
globalThis.fetch = async (url, init = {}) => {
  const body = init.body instanceof URLSearchParams ? Object.fromEntries(init.body) : init.body;
  if (body && typeof body === 'object' && 'client_secret' in body) body.client_secret = '(redacted)';
  const res = await realFetch(url, init);
  wire.push({ method: init.method, url: String(url), body, status: res.status });
  return res;
};

async function main() {
  const input = JSON.parse(process.env.AUTH0_AI_DRIVER);
  let authResponse;
  const authorizer = new AsyncAuthorizerBase(
    { domain: input.domain, clientId: input.clientId, clientSecret: input.clientSecret },
    {
      userID: input.userID,
      bindingMessage: input.bindingMessage,
      scopes: input.scopes,
      authorizationDetails: input.authorizationDetails,
      store: new MemoryStore(),
      // Block and poll (honouring interval) instead of interrupting the agent.
      onAuthorizationRequest: async (resp) => {
        authResponse = resp;
      },
    },
  );
  const tool = authorizer.protect(
    () => ({ threadID: 'thread-1', toolCallID: 'call-1', toolName: 'buy_stock' }),
    async () => ({ credentials: getAsyncAuthorizationCredentials() }),
  );
  // protect() returns the error (rather than throwing) when authorization fails.
  const result = await tool({ ticker: 'NVDA', qty: 10 });
  if (result instanceof Error) {
    return {
      ok: false,
      wire,
      authResponse,
      error: {
        name: result.name,
        class: result.constructor.name,
        isAccessDeniedInterrupt: result instanceof AccessDeniedInterrupt,
        message: result.message,
        code: result.code,
        isAsyncAuthorizationInterrupt: AsyncAuthorizationInterrupt.isInterrupt(result),
        error: result.error, // an auth0 SDK error carries the OAuth error code here
      },
    };
  }
  return { ok: true, wire, authResponse, credentials: result.credentials };
}

main().then(
  (out) => {
    process.stdout.write(JSON.stringify(out) + '\n');
  },
  (err) => {
    process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  },
);
