// base64url (RFC 4648 section 5, no padding) and UTF-8 helpers.

const encoder = new TextEncoder();

/** Encodes bytes (ArrayBuffer, a typed array or a DataView) as base64url without padding. */
export function b64u(bytes) {
  const u8 = bytes instanceof Uint8Array ? bytes
    : ArrayBuffer.isView(bytes) ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
      : new Uint8Array(bytes);
  let bin = '';
  for (let i = 0; i < u8.length; i += 0x8000) {
    bin += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000));
  }
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Decodes base64url (padding and standard base64 tolerated) into a Uint8Array. */
export function fromB64u(s) {
  if (typeof s !== 'string' || !/^[A-Za-z0-9_\-+/]*={0,2}$/.test(s)) {
    throw new TypeError('not base64url');
  }
  const std = s.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '');
  const bin = atob(std + '='.repeat((4 - (std.length % 4)) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** UTF-8 bytes of a string. */
export function utf8(s) {
  return encoder.encode(s);
}

/** base64url of the UTF-8 JSON of a value. */
export function b64uJSON(v) {
  return b64u(utf8(JSON.stringify(v)));
}

/** base64url of 16 random bytes: a JWS jti. */
export function randomID() {
  return b64u(crypto.getRandomValues(new Uint8Array(16)));
}
