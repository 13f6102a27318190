// RFC 8785 JSON Canonicalization Scheme (JCS), for the values JSON.parse produces (null, booleans,
// finite numbers, strings, arrays and plain objects). A decision signs the SHA-256 of the canonical
// JSON of the request's `shown` object; the server computes the same hash with an RFC 8785
// implementation in Go, so this code must follow the RFC byte for byte:
//
// - Section 3.2.1: no whitespace between tokens.
// - Section 3.2.2.1/3.2.2.2: literals as is; strings in double quotes with exactly these escapes:
//   \" \\ \b \t \n \f \r, other code points below U+0020 as \u00hh (lowercase hex), everything
//   else (including U+007F, U+2028, U+2029 and all non-ASCII) as itself. Lone surrogates are not
//   I-JSON (RFC 7493) and are refused.
// - Section 3.2.2.3: numbers as ECMAScript's Number.prototype.toString (ECMA-262 section 6.1.6.1.20,
//   "Number::toString"), which the RFC adopts verbatim; NaN and the infinities are refused and -0
//   is written 0. The JavaScript engine implements exactly that algorithm: String(n).
// - Section 3.2.3: object members sorted by their names as arrays of UTF-16 code units, compared
//   code unit by code unit (JavaScript's string < compares exactly so; not the locale, not UTF-8).
// - Section 3.2.4: the result is encoded as UTF-8.

/** Thrown for a value that has no canonical form (NaN, a lone surrogate, a function, ...). */
export class CanonicalizationError extends Error {
  constructor(message) {
    super(message);
    this.name = 'CanonicalizationError';
  }
}

/** Returns the RFC 8785 canonical JSON text of v (encode it as UTF-8 before hashing). */
export function canonicalize(v) {
  const out = [];
  write(v, out, 0);
  return out.join('');
}

/** Returns the base64url SHA-256 of the UTF-8 canonical JSON of v. */
export async function canonicalSHA256(v) {
  const bytes = new TextEncoder().encode(canonicalize(v));
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  const u8 = new Uint8Array(digest);
  let bin = '';
  for (const b of u8) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

const MAX_DEPTH = 200;

function write(v, out, depth) {
  if (depth > MAX_DEPTH) throw new CanonicalizationError('JSON nested too deeply');
  if (v === null) {
    out.push('null');
    return;
  }
  switch (typeof v) {
    case 'boolean':
      out.push(v ? 'true' : 'false');
      return;
    case 'number':
      out.push(serializeNumber(v));
      return;
    case 'string':
      out.push(serializeString(v));
      return;
    case 'object':
      if (Array.isArray(v)) {
        out.push('[');
        for (let i = 0; i < v.length; i++) {
          if (i > 0) out.push(',');
          write(v[i], out, depth + 1);
        }
        out.push(']');
        return;
      }
      if (!isPlainObject(v)) throw new CanonicalizationError('only plain objects can be canonicalized');
      out.push('{');
      Object.keys(v).sort(compareUTF16).forEach((k, i) => {
        if (v[k] === undefined) throw new CanonicalizationError(`member ${JSON.stringify(k)} is undefined`);
        if (i > 0) out.push(',');
        out.push(serializeString(k), ':');
        write(v[k], out, depth + 1);
      });
      out.push('}');
      return;
    default:
      throw new CanonicalizationError(`a ${typeof v} is not JSON`);
  }
}

function isPlainObject(v) {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Orders strings by UTF-16 code units (RFC 8785 section 3.2.3). */
export function compareUTF16(a, b) {
  // The relational comparison of two strings in ECMAScript (IsLessThan) compares code unit by
  // code unit, which is exactly the order the RFC asks for.
  if (a < b) return -1;
  if (a > b) return 1;
  return 0;
}

/** Serializes a number as RFC 8785 section 3.2.2.3 says: ECMAScript's Number::toString(10). */
export function serializeNumber(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) {
    throw new CanonicalizationError(`${n} is not a finite number and has no JSON form`);
  }
  if (n === 0) return '0'; // also -0
  // Number::toString: the shortest decimal that round-trips, in plain notation for exponents
  // -7 < e < 21 and "d.ddde+x" scientific notation (with an explicit sign) otherwise.
  return String(n);
}

const ESCAPES = { 0x08: '\\b', 0x09: '\\t', 0x0a: '\\n', 0x0c: '\\f', 0x0d: '\\r', 0x22: '\\"', 0x5c: '\\\\' };

/** Serializes a string as RFC 8785 section 3.2.2.2 says. */
export function serializeString(s) {
  let out = '"';
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = s.charCodeAt(i + 1);
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        i++; // a valid pair, kept as is
        continue;
      }
      throw new CanonicalizationError('the string has a lone surrogate (not I-JSON)');
    }
    if (c >= 0x20 && c !== 0x22 && c !== 0x5c) continue;
    out += s.slice(start, i) + (ESCAPES[c] || '\\u' + c.toString(16).padStart(4, '0'));
    start = i + 1;
  }
  return out + s.slice(start) + '"';
}
