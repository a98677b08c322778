import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { connect as tlsConnect } from 'node:tls';
import { connect as netConnect } from 'node:net';
import { get as httpsGet } from 'node:https';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { startGateway } from '../../core/gateway/gateway.ts';
import { pinnedTls } from '../../core/gateway/tls.ts';
import type { RunInfo } from '../../core/gateway/lock.ts';
import { tempHome } from '../helpers/home.ts';
import { healthy, spawnGateway } from '../helpers/gateway.ts';
import { spawnSync } from 'node:child_process';
import { BIN, runCli } from '../helpers/cli.ts';
import { haveOpenssl, selfSignedCert } from '../helpers/mail-servers.ts';

// config.md's gateway.tls, protocol.md's "wss:// when TLS is configured": the
// gateway serves https and wss with the configured certificate, nothing in plain
// text, and the CLI on the same machine talks to it over wss trusting exactly
// that certificate.

const skip = haveOpenssl ? false : 'openssl is not installed (listed in .ci/apt-packages)';

/** A home whose config.json names a fresh self-signed certificate (its key swapped by `key` when given). */
function tlsHome(t: import('node:test').TestContext, key?: (k: string) => string) {
  const cert = selfSignedCert();
  t.after(cert.cleanup);
  const home = tempHome('tls');
  t.after(home.cleanup);
  mkdirSync(home.dir, { recursive: true, mode: 0o700 });
  writeFileSync(home.paths.config, JSON.stringify({ gateway: { tls: { cert: cert.cert, key: key ? key(cert.key) : cert.key } } }));
  return { home, cert, ca: readFileSync(cert.cert, 'utf8') };
}

test('with gateway.tls the gateway serves https and wss only, and the CLI works over it', { skip }, async (t) => {
  const { home, ca } = tlsHome(t);
  const gw = await spawnGateway(home.dir, { ca });
  t.after(() => gw.stop('SIGKILL'));

  assert.match(gw.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(await healthy(`${gw.url}/healthz`, ca), true, 'https with the configured certificate');
  assert.equal(await healthy(`http://127.0.0.1:${gw.port}/healthz`), false, 'nothing answers in plain text');
  assert.equal(await healthy(`${gw.url}/healthz`), false, 'a client that does not trust the certificate is refused');

  const status = await runCli(['status', '--json'], { home: home.dir });
  assert.equal(status.code, 0, status.stderr + gw.output());
  const seen = JSON.parse(status.stdout);
  assert.equal(seen.gateway.up, true, JSON.stringify(seen.gateway));
  assert.match(seen.gateway.url, /^https:\/\//);
  assert.ok(seen.plugins, 'the live status came over wss');
  const invite = await runCli(['devices', 'invite', '--link', '--json'], { home: home.dir });
  assert.equal(invite.code, 0, invite.stderr);
  assert.match(JSON.parse(invite.stdout).link, /^https:\/\/127\.0\.0\.1:\d+\/#invite=/);

  // The key file is world-readable here (the test's certificate): doctor says so.
  const doctor = await runCli(['doctor', '--json'], { home: home.dir });
  assert.ok((JSON.parse(doctor.stdout).findings as { id: string }[]).some((f) => f.id === 'tls.key.readable'), doctor.stdout);
});

test('the CLI pins the certificate the gateway started with: another one, valid or not, is refused', { skip }, async (t) => {
  const { home, ca } = tlsHome(t);
  const other = selfSignedCert();
  t.after(other.cleanup);
  const gw = await spawnGateway(home.dir, { ca });
  t.after(() => gw.stop('SIGKILL'));
  // As if someone answered on the gateway's port with a certificate of their own: the pin names another one.
  const info = JSON.parse(readFileSync(home.paths.runInfo, 'utf8'));
  writeFileSync(home.paths.runInfo, JSON.stringify({ ...info, tls: { cert: other.cert, sha256: new X509Certificate(readFileSync(other.cert)).fingerprint256 } }));
  const status = await runCli(['status', '--json'], { home: home.dir });
  const seen = JSON.parse(status.stdout);
  assert.equal(seen.gateway.up, false);
  assert.match(seen.gateway.error, /certificate/);
  const list = await runCli(['devices', 'list'], { home: home.dir });
  assert.notEqual(list.code, 0);
  assert.match(list.stderr, /cannot connect to the gateway/);
});

test('a gateway.tls it cannot use stops the start with the reason, instead of serving plain text', { skip }, async (t) => {
  const { home, cert } = tlsHome(t, (key) => `${key}.missing`);
  // A start that wrongly succeeded would run on: it gets 30 s, then counts as a failure.
  const start = () => spawnSync(process.execPath, [BIN, 'start', '--home', home.dir, '--port', '0'], { encoding: 'utf8', timeout: 30_000 });
  const missing = start();
  assert.equal(missing.status, 1, missing.stderr);
  assert.match(missing.stderr, /gateway\/tls\/key: cannot read .*key\.pem\.missing: ENOENT/);

  writeFileSync(home.paths.config, JSON.stringify({ gateway: { tls: { cert: cert.cert, key: cert.cert } } }));
  const mismatched = start();
  assert.equal(mismatched.status, 1, mismatched.stderr);
  assert.match(mismatched.stderr, /gateway\/tls: the certificate and key do not make a TLS context/);
});

/** The SHA-256 fingerprint of the certificate a TLS handshake with 127.0.0.1:port presents now. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.once('error', reject);
  });
}

/** GET /healthz the way the CLI does: trusting exactly the certificate run/gateway.json pins. */
function healthyPinned(url: string, runInfo: string): Promise<number> {
  const { tls } = JSON.parse(readFileSync(runInfo, 'utf8')) as RunInfo;
  return new Promise((resolve, reject) => {
    const req = httpsGet(`${url}/healthz`, { ...pinnedTls(tls!.cert, tls!.sha256), agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.once('error', reject);
  });
}

async function until(what: string, check: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(25);
  }
}

test('a renewed certificate is served without a restart; files that do not load leave the served one in place', { skip }, async (t) => {
  const { home, cert } = tlsHome(t);
  const [renewed, other] = [selfSignedCert(), selfSignedCert()];
  t.after(renewed.cleanup);
  t.after(other.cleanup);
  const fingerprint = (file: string) => new X509Certificate(readFileSync(file)).fingerprint256;
  const logs: string[] = [];
  const logStream = new Writable({ write: (chunk, _enc, done) => (logs.push(String(chunk)), done()) });
  const gw = await startGateway({ home: home.dir, port: 0, logStream, services: [], tlsPollMs: 20 });
  t.after(() => gw.stop());
  const first = fingerprint(cert.cert);
  assert.equal(await servedFingerprint(gw.port), first);
  const before = tlsConnect({ host: '127.0.0.1', port: gw.port, rejectUnauthorized: false });
  await once(before, 'secureConnect');
  t.after(() => before.destroy());

  // Half a renewal: a new key beside the old certificate. Refused, and the old pair still served.
  copyFileSync(renewed.key, cert.key);
  await until('the refusal in the log', () => logs.some((l) => l.includes('the new files do not load')));
  assert.ok(logs.some((l) => /key values mismatch|do not make a TLS context/.test(l)), 'the reason is logged');
  assert.equal(await servedFingerprint(gw.port), first);

  // The renewal completes: the new pair reaches new connections, the pin follows, an open connection stays.
  copyFileSync(renewed.cert, cert.cert);
  await until('the renewed certificate served', async () => (await servedFingerprint(gw.port)) === fingerprint(renewed.cert));
  await until('run/gateway.json pins it', () => readFileSync(home.paths.runInfo, 'utf8').includes(fingerprint(renewed.cert)));
  assert.equal(await healthyPinned(gw.url, home.paths.runInfo), 200, 'a client pinning from run/gateway.json connects');
  assert.equal(before.destroyed, false, 'a connection opened before the renewal is not cut');
  const reloads = gw.ctx.audit.list({ action: 'gateway.tls.reload' });
  assert.equal(reloads.length, 1);
  assert.deepEqual(JSON.parse(JSON.stringify(reloads[0].data)), { why: 'its files changed', from: first, to: fingerprint(renewed.cert), cert: cert.cert });

  // New paths in gateway.tls take effect too, and the new files are the ones watched from then on.
  writeFileSync(home.paths.config, JSON.stringify({ gateway: { tls: { cert: other.cert, key: other.key } } }));
  await until('the certificate gateway.tls now names served', async () => (await servedFingerprint(gw.port)) === fingerprint(other.cert));
  assert.equal(gw.ctx.audit.list({ action: 'gateway.tls.reload' }).at(-1)!.data.why, 'gateway.tls changed');
  copyFileSync(renewed.cert, other.cert);
  copyFileSync(renewed.key, other.key);
  await until('the renewal of the new files served', async () => (await servedFingerprint(gw.port)) === fingerprint(renewed.cert));
});

test('a client that opened TCP to the https port and never began a handshake does not hold a SIGTERM stop', { skip }, async (t) => {
  const { home, ca } = tlsHome(t);
  const gw = await spawnGateway(home.dir, { ca });
  t.after(() => gw.stop('SIGKILL'));
  const quiet = netConnect(gw.port, '127.0.0.1');
  await once(quiet, 'connect');
  t.after(() => quiet.destroy());
  assert.equal(await healthy(`${gw.url}/healthz`, ca), true);
  // TLS gives such a connection two minutes to say hello; the stop's grace is 15 s, after which it exits 1 unclean.
  const exit = await gw.stop('SIGTERM');
  assert.deepEqual(exit, { code: 0, signal: null }, gw.output());
  assert.doesNotMatch(gw.output(), /shutdown took too long/);
});
