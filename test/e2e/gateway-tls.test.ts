import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
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
