// The device API client (docs/device-api.md). Every call carries a fresh JWS signed by the device
// key in its Authorization header ("Device <JWS>", typ countersign-device+jwt) bound to the method
// and the URL. There are no cookies (credentials: 'omit'), sessions or bearer tokens, so a
// cross-site page has no ambient authority to abuse: CSRF does not apply.

import { randomID } from './b64.js';
import { canonicalSHA256 } from './jcs.js';
import { signJWS } from './jws.js';

/** An error answer of the device API ({error, error_description}) or a network failure. */
export class APIError extends Error {
  constructor(status, code, description) {
    super(description || (status ? `The server answered HTTP ${status}.` : 'The server could not be reached.'));
    this.name = 'APIError';
    this.status = status; // 0 for a network failure
    this.code = code || '';
  }

  /** The device was removed (or never existed): forget the key and offer to enroll again. */
  get deviceGone() {
    return this.status === 401 && /removed|unknown device/.test(this.message);
  }

  /** The device clock is too far from the server's. */
  get clockSkew() {
    return /iat is more than/.test(this.message);
  }
}

/** Thrown when our hash of `shown` differs from the server's: nothing is signed then. */
export class IntegrityError extends Error {
  constructor(message) {
    super(message);
    this.name = 'IntegrityError';
  }
}

// The server's clock minus ours, in ms, from the Date header of its answers. It is used only when
// it is large (docs/device-api.md 9.2): a phone's clock is usually right and Date has a 1 s
// resolution.
let clockOffset = 0;

/** The estimated clock skew in seconds (0 when within a minute). */
export function clockSkewSeconds() {
  return Math.round(clockOffset / 1000);
}

function noteServerClock(res) {
  const date = Date.parse(res.headers.get('Date') || '');
  if (!Number.isFinite(date)) return;
  const offset = date - Date.now();
  clockOffset = Math.abs(offset) > 60_000 ? offset : 0;
}

/** Seconds since the epoch, as iat wants them (an integer). */
export function nowSeconds() {
  return Math.floor((Date.now() + clockOffset) / 1000);
}

async function send(url, init) {
  let res;
  try {
    res = await fetch(url, { cache: 'no-store', credentials: 'omit', redirect: 'error', ...init });
  } catch (e) {
    throw new APIError(0, 'network', navigator.onLine === false
      ? 'You are offline.' : 'The server could not be reached. Check your connection.');
  }
  noteServerClock(res);
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    throw new APIError(res.status, body.error, body.error_description);
  }
  if (res.status === 204) return null;
  return res.json();
}

/** The issuer of the page at location: origin + the path before "app/" or "enroll". */
export function issuerFromLocation(loc = location) {
  const p = loc.pathname;
  if (p.endsWith('/enroll')) return loc.origin + p.slice(0, -'enroll'.length);
  const i = p.lastIndexOf('/app/');
  return loc.origin + p.slice(0, (i < 0 ? p.lastIndexOf('/') : i) + 1);
}

/** GET device/v1/config (no auth): {issuer, vapid_public_key}, or null if the server has none. */
export async function fetchConfig(issuer) {
  try {
    return await send(issuer + 'device/v1/config', { headers: { Accept: 'application/json' } });
  } catch (e) {
    if (e.status === 404 || e.status === 405) return null;
    throw e;
  }
}

/** POST device/v1/enroll with the enrollment JWS. */
export function enroll(issuer, enrollment) {
  return send(issuer + 'device/v1/enroll', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ enrollment }),
  });
}

/** A client for one enrolled device: {issuer, deviceId, privateKey}. */
export class DeviceAPI {
  constructor(device) {
    this.issuer = device.issuer;
    this.deviceId = device.deviceId;
    this.key = device.privateKey;
  }

  /**
   * Calls {issuer}device/v1/{path} with a freshly signed Authorization header. body, when given, is
   * sent as JSON. Returns the parsed JSON answer (null for 204).
   */
  async call(method, path, body) {
    const url = this.issuer + 'device/v1/' + path;
    const auth = await signJWS(this.key,
      { alg: 'ES256', typ: 'countersign-device+jwt', kid: this.deviceId },
      { aud: this.issuer, htm: method, htu: url.split('?')[0], iat: nowSeconds(), jti: randomID() });
    const headers = { Authorization: 'Device ' + auth, Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    return send(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  }

  pending() { return this.call('GET', 'requests').then((r) => r.requests || []); }
  request(id) { return this.call('GET', 'requests/' + encodeURIComponent(id)); }
  history(limit = 50) { return this.call('GET', 'history?limit=' + limit).then((r) => r.requests || []); }
  devices() { return this.call('GET', 'devices').then((r) => r.devices || []); }
  removeDevice(id) { return this.call('DELETE', 'devices/' + encodeURIComponent(id)); }
  putPushSubscription(sub) { return this.call('PUT', 'push-subscription', sub); }
  deletePushSubscription() { return this.call('DELETE', 'push-subscription'); }
  passkeys() { return this.call('GET', 'passkeys').then((r) => (Array.isArray(r) ? r : r.passkeys || [])); }
  passkeyOptions() { return this.call('POST', 'passkeys/options', {}); }
  registerPasskey(credential, name) {
    return this.call('POST', 'passkeys' + (name ? '?name=' + encodeURIComponent(name) : ''), credential);
  }

  /**
   * Signs and sends a decision on the RequestView the user saw. It recomputes shown_sha256 and
   * refuses to sign if it differs from the server's. opts: {verificationCode, report, stepUp}, where
   * stepUp(signedDecision) returns the WebAuthn assertion to send along (passkey step-up).
   */
  async decide(view, decision, opts = {}) {
    const hash = await canonicalSHA256(view.shown);
    if (hash !== view.shown_sha256 || view.shown.request_id !== view.id) {
      throw new IntegrityError('This request could not be verified: the content the server sent does not match '
        + 'its fingerprint. Nothing was signed. Reload it; if this persists, tell your administrator.');
    }
    const payload = {
      aud: this.issuer, request_id: view.id, decision, shown_sha256: hash, iat: nowSeconds(), jti: randomID(),
    };
    if (opts.verificationCode) payload.verification_code = opts.verificationCode;
    if (opts.report) payload.report = true;
    const signed = await signJWS(this.key, { alg: 'ES256', typ: 'countersign-decision+jwt', kid: this.deviceId }, payload);
    const body = { signed_decision: signed };
    if (opts.stepUp) body.webauthn = await opts.stepUp(signed);
    return send(this.issuer + 'device/v1/requests/' + encodeURIComponent(view.id) + '/decision', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(body),
    });
  }
}
