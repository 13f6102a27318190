// Compact JWS with ES256, signed by a WebCrypto ECDSA P-256 key. WebCrypto's ECDSA signature is the
// 64-byte r || s, which is exactly the JWS ES256 signature format (RFC 7518 section 3.4): no DER.

import { b64u, b64uJSON, utf8 } from './b64.js';

/** Signs header and payload; returns header.payload.signature. */
export async function signJWS(privateKey, header, payload) {
  const input = b64uJSON(header) + '.' + b64uJSON(payload);
  const sig = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, utf8(input));
  return input + '.' + b64u(sig);
}

/** Generates a device key pair: the private key is not extractable, ever. */
export function generateDeviceKey() {
  return crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
}

/** The public JWK members the server wants: kty, crv, x, y (never d). */
export async function publicJWK(publicKey) {
  const { kty, crv, x, y } = await crypto.subtle.exportKey('jwk', publicKey);
  return { kty, crv, x, y };
}
