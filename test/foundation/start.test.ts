import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync, existsSync, readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import Database from 'better-sqlite3';
import { tempHome } from '../helpers/home.ts';
import { spawnGateway } from '../helpers/gateway.ts';
import { runCli } from '../helpers/cli.ts';
import { connect } from 'node:net';
import { once } from 'node:events';

test('a fresh home starts, answers /healthz, reports up in status, and stops cleanly on SIGTERM', async (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  const gw = await spawnGateway(home.dir);
  t.after(() => gw.stop('SIGKILL'));

  const res = await fetch(`${gw.url}/healthz`);
  assert.equal(res.status, 200);
  const body = (await res.json()) as { ok: boolean; version: string };
  assert.equal(body.ok, true);

  const status = await runCli(['status', '--json'], { home: home.dir });
  assert.equal(status.code, 0, status.stderr);
  const parsed = JSON.parse(status.stdout) as { gateway: { up: boolean; port: number; pid: number } };
  assert.equal(parsed.gateway.up, true);
  assert.equal(parsed.gateway.port, gw.port);
  assert.equal(parsed.gateway.pid, gw.child.pid);

  const exit = await gw.stop('SIGTERM');
  assert.deepEqual(exit, { code: 0, signal: null }, gw.output());
  assert.equal(existsSync(home.paths.runInfo), false, 'run/gateway.json is removed on a clean stop');
  assert.equal(existsSync(home.paths.lock), false, 'run/lock is released on a clean stop');

  const db = new Database(home.paths.db, { readonly: true });
  try {
    assert.equal((db.pragma('integrity_check') as { integrity_check: string }[])[0].integrity_check, 'ok');
    const actions = (db.prepare('SELECT action FROM audit ORDER BY seq').all() as { action: string }[]).map((r) => r.action);
    assert.deepEqual(actions, ['gateway.start', 'device.invite', 'gateway.stop']);
  } finally {
    db.close();
  }

  const after = await runCli(['status', '--json'], { home: home.dir });
  assert.equal(JSON.parse(after.stdout).gateway.up, false);
});

test('first start creates the state directory 0700 and the gateway and owner keys 0600', async (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  const gw = await spawnGateway(home.dir);
  t.after(() => gw.stop('SIGKILL'));
  assert.equal(statSync(home.dir).mode & 0o777, 0o700);
  for (const file of [home.paths.gatewayKey, home.paths.ownerKey, home.paths.db]) {
    assert.equal(statSync(file).mode & 0o777, 0o600, file);
  }
  const key = JSON.parse(readFileSync(home.paths.ownerKey, 'utf8'));
  assert.equal(key.alg, 'ed25519');
  assert.match(key.id, /^[0-9a-f]{64}$/);
  assert.equal(Buffer.from(key.publicKey, 'base64').length, 32);
  assert.equal(Buffer.from(key.seed, 'base64').length, 32);
  await gw.stop();
});

test('the gateway binds loopback by default, and keeps its keys across restarts', async (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  const first = await spawnGateway(home.dir);
  assert.equal(first.info.host, '127.0.0.1');
  assert.equal(first.info.bind, 'loopback');
  const key1 = readFileSync(home.paths.gatewayKey, 'utf8');
  assert.equal((await first.stop()).code, 0);
  const second = await spawnGateway(home.dir);
  t.after(() => second.stop('SIGKILL'));
  assert.equal(readFileSync(home.paths.gatewayKey, 'utf8'), key1);
  await second.stop();
});

test('a client that connected and never sent a request does not hold a SIGTERM stop past its clean-up', async (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  const gw = await spawnGateway(home.dir);
  t.after(() => gw.stop('SIGKILL'));
  // Node's closeIdleConnections leaves such a connection open: the stop used to wait
  // for it until the shutdown grace ran out, then exit 1 with its clean-up skipped.
  const quiet = connect(gw.port, '127.0.0.1');
  await once(quiet, 'connect');
  t.after(() => quiet.destroy());
  const answered = await fetch(`${gw.url}/healthz`);
  assert.equal(answered.status, 200);

  const exit = await gw.stop('SIGTERM');
  assert.deepEqual(exit, { code: 0, signal: null }, gw.output());
  assert.doesNotMatch(gw.output(), /shutdown took too long/);
  assert.equal(existsSync(home.paths.runInfo), false, 'run/gateway.json is removed on a clean stop');
  const db = new Database(home.paths.db, { readonly: true });
  try {
    assert.equal((db.prepare("SELECT count(*) AS n FROM audit WHERE action = 'gateway.stop'").get() as { n: number }).n, 1);
  } finally {
    db.close();
  }
});

test('a port already in use is named in the refusal, whether it came from --port or from config.json', async (t) => {
  const home = tempHome('busy');
  t.after(home.cleanup);
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
  t.after(() => taken.close());
  const busy = (taken.address() as { port: number }).port;
  const flagged = await runCli(['start', '--port', String(busy)], { home: home.dir });
  assert.equal(flagged.code, 1);
  assert.match(flagged.stderr, new RegExp(`port ${busy} is already in use`));
  mkdirSync(home.dir, { recursive: true, mode: 0o700 });
  writeFileSync(home.paths.config, JSON.stringify({ gateway: { port: busy } }));
  const configured = await runCli(['start'], { home: home.dir });
  assert.equal(configured.code, 1);
  assert.match(configured.stderr, new RegExp(`port ${busy} is already in use`), 'not the default port');
});
