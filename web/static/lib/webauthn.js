// WebAuthn (passkeys) glue: JSON with base64url <-> the ArrayBuffers navigator.credentials wants.

import { b64u, fromB64u, utf8 } from './b64.js';

/** Whether this browser can use passkeys at all. */
export function passkeysSupported() {
  return typeof window !== 'undefined' && !!window.PublicKeyCredential && !!navigator.credentials;
}

function withoutNulls(o) {
  const out = {};
  for (const [k, v] of Object.entries(o || {})) if (v !== null && v !== undefined) out[k] = v;
  return out;
}

function descriptors(list) {
  return (Array.isArray(list) ? list : []).map((c) => ({ ...withoutNulls(c), id: fromB64u(c.id) }));
}

/** Turns the server's PublicKeyCredentialCreationOptions (base64url members) into the browser's. */
export function creationOptions(json) {
  const pk = withoutNulls(json && json.publicKey ? json.publicKey : json);
  return {
    ...pk,
    challenge: fromB64u(pk.challenge),
    user: { ...withoutNulls(pk.user), id: fromB64u(pk.user.id) },
    excludeCredentials: descriptors(pk.excludeCredentials),
  };
}

/** The JSON the server wants for a new credential, every binary member base64url. */
export function attestationJSON(cred) {
  const r = cred.response;
  return {
    id: cred.id,
    rawId: b64u(cred.rawId),
    type: cred.type,
    authenticatorAttachment: cred.authenticatorAttachment || undefined,
    clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
    response: {
      clientDataJSON: b64u(r.clientDataJSON),
      attestationObject: b64u(r.attestationObject),
      transports: typeof r.getTransports === 'function' ? r.getTransports() : [],
    },
  };
}

/**
 * Asks for a user-verified passkey assertion over a signed decision: the challenge is the SHA-256 of
 * the ASCII bytes of the compact JWS, so the assertion is good for that one decision only.
 * credentialIDs (base64url) narrows the choice to the user's passkeys when the server lists them.
 */
export async function assertOverDecision(signedDecision, credentialIDs) {
  const challenge = await crypto.subtle.digest('SHA-256', utf8(signedDecision));
  const publicKey = {
    challenge,
    rpId: location.hostname,
    userVerification: 'required',
    timeout: 120_000,
  };
  if (Array.isArray(credentialIDs) && credentialIDs.length > 0) {
    publicKey.allowCredentials = credentialIDs.map((id) => ({ type: 'public-key', id: fromB64u(id) }));
  }
  const cred = await navigator.credentials.get({ publicKey });
  if (!cred) throw new Error('No passkey was used.');
  const r = cred.response;
  return {
    id: cred.id,
    rawId: b64u(cred.rawId),
    type: cred.type,
    authenticatorAttachment: cred.authenticatorAttachment || undefined,
    clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
    response: {
      clientDataJSON: b64u(r.clientDataJSON),
      authenticatorData: b64u(r.authenticatorData),
      signature: b64u(r.signature),
      userHandle: r.userHandle ? b64u(r.userHandle) : null,
    },
  };
}

/** A short, human explanation of a WebAuthn failure. */
export function describeWebAuthnError(e) {
  switch (e && e.name) {
    case 'NotAllowedError':
      return 'The passkey prompt was cancelled or timed out.';
    case 'InvalidStateError':
      return 'This passkey is already registered.';
    case 'SecurityError':
      return 'Passkeys need a secure connection (HTTPS) on the server\'s own host name.';
    case 'NotSupportedError':
      return 'This browser or device has no passkey that can do this.';
    default:
      return (e && e.message) || 'The passkey operation failed.';
  }
}
