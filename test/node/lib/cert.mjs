// A self-signed ECDSA P-256 certificate for 127.0.0.1 and localhost, for the TLS server that
// @auth0/ai needs (it always uses https://<domain>). Made with openssl when it is on the PATH,
// otherwise (or with COUNTERSIGN_TEST_CERT=js) with the small DER encoder below.

import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes, sign, X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export async function makeSelfSignedCert(dir) {
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  let how = 'js';
  if (process.env.COUNTERSIGN_TEST_CERT !== 'js') {
    try {
      await execFileP('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=localhost',
        '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
      ]);
      how = 'openssl';
    } catch (err) {
      if (err.code !== 'ENOENT') throw err; // openssl is there but failed: say why
    }
  }
  if (how === 'js') {
    const { certPem, keyPem } = jsSelfSigned();
    await writeFile(certFile, certPem);
    await writeFile(keyFile, keyPem, { mode: 0o600 });
  }
  const certPem = await readFile(certFile, 'utf8');
  const x509 = new X509Certificate(certPem);
  if (!x509.checkIP('127.0.0.1') || !x509.checkHost('localhost')) {
    throw new Error(`test certificate does not cover 127.0.0.1 and localhost: ${x509.subjectAltName}`);
  }
  return { certFile, keyFile, certPem, how };
}

// --- minimal DER encoding, enough for one X.509 v3 certificate ---

function tlv(tag, ...parts) {
  const body = Buffer.concat(parts);
  let len;
  if (body.length < 0x80) len = Buffer.from([body.length]);
  else if (body.length < 0x100) len = Buffer.from([0x81, body.length]);
  else len = Buffer.from([0x82, body.length >> 8, body.length & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, body]);
}
const seq = (...p) => tlv(0x30, ...p);
const set = (...p) => tlv(0x31, ...p);
const octets = (b) => tlv(0x04, b);
const bits = (b) => tlv(0x03, Buffer.from([0]), b);
const utf8 = (s) => tlv(0x0c, Buffer.from(s, 'utf8'));
const explicit = (n, ...p) => tlv(0xa0 + n, ...p);
function integer(b) {
  return tlv(0x02, b[0] & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b);
}
function oid(dotted) {
  const [a, b, ...rest] = dotted.split('.').map(Number);
  const out = [40 * a + b];
  for (const n of rest) {
    const enc = [n & 0x7f];
    for (let v = n >>> 7; v > 0; v >>>= 7) enc.unshift(0x80 | (v & 0x7f));
    out.push(...enc);
  }
  return tlv(0x06, Buffer.from(out));
}
function utcTime(d) {
  const s = d.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z'; // YYMMDDHHMMSSZ
  return tlv(0x17, Buffer.from(s, 'ascii'));
}

function jsSelfSigned() {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ecdsaWithSHA256 = seq(oid('1.2.840.10045.4.3.2'));
  const name = seq(set(seq(oid('2.5.4.3'), utf8('localhost'))));
  const now = Date.now();
  const san = seq(
    tlv(0x82, Buffer.from('localhost', 'ascii')), // dNSName
    tlv(0x87, Buffer.from([127, 0, 0, 1])), // iPAddress
  );
  const tbs = seq(
    explicit(0, integer(Buffer.from([2]))), // v3
    integer(randomBytes(16)),
    ecdsaWithSHA256,
    name,
    seq(utcTime(new Date(now - 60 * 60 * 1000)), utcTime(new Date(now + 2 * 24 * 60 * 60 * 1000))),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
    explicit(3, seq(seq(oid('2.5.29.17'), octets(san)))),
  );
  const signature = sign('sha256', tbs, { key: privateKey, dsaEncoding: 'der' });
  const der = seq(tbs, ecdsaWithSHA256, bits(signature));
  const b64 = der.toString('base64').match(/.{1,64}/g).join('\n');
  return {
    certPem: `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`,
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }),
  };
}
