// Shared setup for the Node interop tests: runs the real countersign binary (built by run.sh and
// named by COUNTERSIGN_BIN) as a server and as the terminal authenticator. No mocks.

import { spawn, execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as httpsRequest } from 'node:https';
import { test } from 'node:test';

import { makeSelfSignedCert } from './cert.mjs';

export const BIN = process.env.COUNTERSIGN_BIN;

export const CLIENT_ID = 'agent';
export const CLIENT_SECRET = 'agent-secret';
export const USER = 'alice';
export const USER_WITHOUT_DEVICE = 'bob'; // never enrolled
export const TRADE_ORDER = { type: 'trade_order', symbol: 'NVDA', side: 'BUY', quantity: 10 };

// Every child process this test file starts, so that none outlives it (even on failure).
const children = new Set();

function killAll(signal = 'SIGKILL') {
  for (const child of children) {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}
process.on('exit', () => killAll());
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    killAll();
    process.exit(130);
  });
}

function track(child) {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

/** Runs a child process to completion; resolves with {code, signal, stdout, stderr}. */
export function run(cmd, args, { env, timeoutMs = 20_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = track(
      execFile(cmd, args, { env: { ...process.env, ...env }, timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number' && !err.signal) {
          reject(err);
          return;
        }
        resolve({ code: err ? err.code ?? null : 0, signal: err?.signal ?? null, stdout, stderr });
      }),
    );
    child.stdin?.end();
  });
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function configYAML({ issuer, listen, tls }) {
  return `# written by test/node/lib/harness.mjs
issuer: ${issuer}
listen: ${listen}
data_dir: ./data
${tls ? `tls: {cert_file: ${JSON.stringify(tls.certFile)}, key_file: ${JSON.stringify(tls.keyFile)}}\n` : ''}log: {level: debug}
ciba: {poll_interval: 1s}
users:
  - {sub: ${USER}, email: alice@example.com, name: Alice Example}
  - {sub: ${USER_WITHOUT_DEVICE}, email: bob@example.com, name: Bob Example}
clients:
  - client_id: ${CLIENT_ID}
    client_secret: ${CLIENT_SECRET}
    name: Node Interop Agent
    backchannel_token_delivery_mode: poll
    authorization_details_types: [trade_order]
authorization_details_types:
  trade_order:
    display: "{{.side}} {{.quantity}} {{.symbol}} ({{.order_type}})"
    schema:
      type: object
      required: [symbol, side, quantity]
      properties:
        symbol: {type: string, pattern: "^[A-Z.]{1,10}$"}
        side: {enum: [BUY, SELL]}
        quantity: {type: integer, minimum: 1}
        order_type: {enum: [market, limit], default: market}
        limit_price: {type: number}
`;
}

/** GET url and resolve with the status code (https with the test CA when given). */
function probe(url, ca) {
  return new Promise((resolve) => {
    if (url.startsWith('https:')) {
      const req = httpsRequest(url, { ca, timeout: 1000 }, (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on('error', () => resolve(0));
      req.on('timeout', () => req.destroy());
      req.end();
      return;
    }
    fetch(url, { signal: AbortSignal.timeout(1000) })
      .then((res) => res.status)
      .catch(() => 0)
      .then(resolve);
  });
}

/**
 * A running `countersign serve` with its own temp dir, config and data. With tls: true it serves
 * HTTPS with a self-signed certificate for 127.0.0.1 and localhost (certFile).
 */
export class Server {
  static async start({ tls = false } = {}) {
    if (!BIN) {
      throw new Error('COUNTERSIGN_BIN is not set: run test/node/run.sh (it builds the binary)');
    }
    const dir = await mkdtemp(join(tmpdir(), 'countersign-node-'));
    let lastErr;
    // A port picked with freePort() may be taken by someone else before the server binds it.
    for (let attempt = 0; attempt < 3; attempt++) {
      const server = new Server(dir, tls);
      try {
        await server.#start();
        return server;
      } catch (err) {
        lastErr = err;
        await server.stop();
        if (!/address already in use/i.test(server.stderr)) break;
      }
    }
    await rm(dir, { recursive: true, force: true });
    throw lastErr;
  }

  constructor(dir, tls) {
    this.dir = dir;
    this.tls = tls;
    this.configPath = join(dir, 'countersign.yaml');
    this.keyPath = join(dir, `${USER}.key`);
    this.stderr = '';
    this.stdout = '';
    this.transcript = []; // CLI commands run against this server, with their output
  }

  async #start() {
    const port = await freePort();
    const scheme = this.tls ? 'https' : 'http';
    this.port = port;
    this.issuer = `${scheme}://127.0.0.1:${port}/`;
    // Domain as @auth0/ai wants it: host[:port], no scheme.
    this.domain = `127.0.0.1:${port}`;
    let tls;
    if (this.tls) {
      const { certFile, keyFile, certPem, how } = await makeSelfSignedCert(this.dir);
      tls = { certFile, keyFile };
      this.certFile = certFile;
      this.certPem = certPem;
      this.certHow = how;
    }
    await writeFile(this.configPath, configYAML({ issuer: this.issuer, listen: `127.0.0.1:${port}`, tls }));

    const child = track(spawn(BIN, ['serve', '--config', this.configPath], { stdio: ['ignore', 'pipe', 'pipe'] }));
    this.child = child;
    child.stdout.setEncoding('utf8').on('data', (d) => (this.stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (this.stderr += d));
    this.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));

    const deadline = Date.now() + 15_000;
    let exit;
    this.exited.then((e) => (exit = e));
    while (Date.now() < deadline) {
      if (exit) {
        throw new Error(`countersign serve exited early (${JSON.stringify(exit)})\n${this.stderr}`);
      }
      if ((await probe(`${this.issuer}healthz`, this.certPem)) === 200) return;
      await sleep(50);
    }
    throw new Error(`countersign serve did not answer ${this.issuer}healthz within 15s\n${this.stderr}`);
  }

  /** Environment for CLI commands that talk to this server (the Go client trusts the test CA). */
  cliEnv() {
    return this.tls ? { SSL_CERT_FILE: this.certFile } : {};
  }

  /** Runs `countersign ARGS` to completion, records it, and fails on a non-zero exit. */
  async cli(args, { allowFail = false } = {}) {
    const r = await run(BIN, args, { env: this.cliEnv() });
    this.transcript.push({ args, ...r });
    if (r.code !== 0 && !allowFail) {
      throw new Error(`countersign ${args.join(' ')} exited ${r.code ?? r.signal}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    }
    return r;
  }

  /** `users invite alice` then `device enroll URL --key alice.key`. */
  async enrollAlice() {
    try {
      await this.#enrollAlice();
    } catch (err) {
      err.message += `\n${this.report()}`;
      throw err;
    }
  }

  async #enrollAlice() {
    const invite = await this.cli(['users', 'invite', USER, '--config', this.configPath]);
    const lines = invite.stdout.trim().split('\n');
    const url = lines[lines.length - 1].trim();
    if (!/^https?:\/\//.test(url)) throw new Error(`invite: last line is not a URL: ${JSON.stringify(url)}`);
    await this.cli(['device', 'enroll', url, '--key', this.keyPath, '--name', 'node interop']);
  }

  /**
   * Starts `countersign device approve|deny --key alice.key --binding-message MSG --wait 30s`, which
   * waits for the matching request to appear. Returns a promise of its result; the promise rejects
   * when the command fails.
   */
  decide(verb, bindingMessage) {
    const args = ['device', verb, '--key', this.keyPath, '--binding-message', bindingMessage, '--wait', '30s'];
    const done = new Promise((resolve, reject) => {
      const child = track(spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...this.cliEnv() } }));
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
      child.on('error', reject);
      child.on('exit', (code, signal) => {
        const r = { args, code, signal, stdout, stderr };
        this.transcript.push(r);
        if (code === 0) resolve(r);
        else reject(new Error(`countersign ${args.join(' ')} exited ${code ?? signal}\nstdout: ${stdout}\nstderr: ${stderr}`));
      });
    });
    // The test awaits it later; if the test fails first, this is not an unhandled rejection.
    done.catch(() => {});
    return done;
  }

  /** The server's logs and the CLI transcript, for a failing test. */
  report() {
    const cli = this.transcript
      .map((r) => `$ countersign ${r.args.join(' ')}  (exit ${r.code ?? r.signal})\n${r.stdout}${r.stderr}`)
      .join('\n');
    return `--- countersign serve (${this.issuer}) stderr ---\n${this.stderr}\n--- countersign CLI ---\n${cli}\n--- end ---\n`;
  }

  async stop() {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const killer = setTimeout(() => this.child.kill('SIGKILL'), 3000);
      await this.exited;
      clearTimeout(killer);
    }
  }

  async cleanup() {
    await this.stop();
    killAll(); // authenticator commands still waiting after a failed test
    await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * Like test(), but when the test fails the server's stderr and the CLI transcript are printed, so
 * that CI logs show why.
 */
export function serverTest(name, getServer, fn, { timeout = 40_000 } = {}) {
  return test(name, { timeout }, async (t) => {
    try {
      await fn(t);
    } catch (err) {
      const server = getServer();
      if (server) t.diagnostic(`server logs for the failed test:\n${server.report()}`);
      throw err;
    }
  });
}

/** A binding message unique to this run, so that --binding-message matches exactly one request. */
export function bindingMessage(label) {
  return `${label} ${Math.random().toString(36).slice(2, 8)}`;
}
