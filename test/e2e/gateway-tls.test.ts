import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
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

test('with gateway.tls the gateway serves https and wss only, and the CLI works over it', { skip }, async (t) => {
  const cert = selfSignedCert();
  t.after(cert.cleanup);
  const home = tempHome('tls');
  t.after(home.cleanup);
  mkdirSync(home.dir, { recursive: true, mode: 0o700 });
  writeFileSync(home.paths.config, JSON.stringify({ gateway: { tls: { cert: cert.cert, key: cert.key } } }));
  const ca = readFileSync(cert.cert, 'utf8');
  const gw = await spawnGateway(home.dir, { ca });
  t.after(() => gw.stop('SIGKILL'));

  assert.match(gw.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(await healthy(`${gw.url}/healthz`, ca), true, 'https with the configured certificate');
  assert.equal(await healthy(`http://127.0.0.1:${gw.port}/healthz`), false, 'nothing answers in plain text');
  assert.equal(await healthy(`${gw.url}/healthz`), false, 'a client that does not trust the certificate is refused');

  const status = await runCli(['status', '--json'], { home: home.dir });
  assert.equal(status.code, 0, status.stderr + gw.output());
  assert.match(JSON.parse(status.stdout).gateway.url, /^https:\/\//);
  const invite = await runCli(['devices', 'invite', '--link', '--json'], { home: home.dir });
  assert.equal(invite.code, 0, invite.stderr);
  assert.match(JSON.parse(invite.stdout).link, /^https:\/\/127\.0\.0\.1:\d+\/#invite=/);
});

test('a gateway.tls it cannot use stops the start with the reason, instead of serving plain text', { skip }, async (t) => {
  const cert = selfSignedCert();
  t.after(cert.cleanup);
  const home = tempHome('tls');
  t.after(home.cleanup);
  mkdirSync(home.dir, { recursive: true, mode: 0o700 });
  writeFileSync(home.paths.config, JSON.stringify({ gateway: { tls: { cert: cert.cert, key: `${cert.key}.missing` } } }));
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
