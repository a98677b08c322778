import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { tempHome } from '../helpers/home.ts';
import { spawnGateway } from '../helpers/gateway.ts';
import { runCli } from '../helpers/cli.ts';
import { generateKeyPair, readKeyFile } from '../../core/identity/keys.ts';
import { nodeClient, nodeVerify } from '../../core/client/node.ts';
import { helloPayload } from '../../core/bus/signing.ts';
import { CarapaceError } from '../../core/errors.ts';

test('pairing story: unknown device → code → `carapace devices approve` → connect with a hello signed by the pinned gateway key → revoke', async (t) => {
  const home = tempHome('bus-cli');
  t.after(home.cleanup);
  const gw = await spawnGateway(home.dir);
  t.after(() => gw.stop('SIGKILL'));
  const gwKey = JSON.parse(readFileSync(home.paths.gatewayKey, 'utf8')) as { id: string; publicKey: string };
  const pin = { id: gwKey.id, publicKey: gwKey.publicKey };
  const url = `ws://127.0.0.1:${gw.port}/ws`;
  const key = generateKeyPair();
  const device = () => nodeClient({ url, key, pin, scopes: ['operator.read'], reconnect: false, client: { name: 'phone', version: '1', platform: 'test' } });

  const first = device();
  const err = await first.connect().then(() => null, (e: unknown) => e as CarapaceError);
  assert.equal(err?.code, 'PAIRING_REQUIRED');
  const code = err!.details!.code as string;

  const pending = await runCli(['devices', 'pending', '--json'], { home: home.dir });
  assert.equal(pending.code, 0, pending.stderr);
  assert.deepEqual(JSON.parse(pending.stdout).requests.map((r: { code: string }) => r.code), [code]);

  const approve = await runCli(['devices', 'approve', code, '--scopes', 'operator.read'], { home: home.dir });
  assert.equal(approve.code, 0, approve.stderr);
  assert.match(approve.stdout, /approved/);

  // The client refuses a hello whose signature does not verify with the pinned key, so a resolved connect is a verified one.
  const c = device();
  const hello = await c.connect();
  assert.equal(hello.gateway.publicKey, pin.publicKey);
  assert.deepEqual(hello.device, { id: key.id, role: 'operator', scopes: ['operator.read'] });
  assert.equal((await c.request<{ ok: boolean }>('health')).ok, true);

  const list = await runCli(['devices', 'list', '--json'], { home: home.dir });
  const listed = JSON.parse(list.stdout).devices.find((d: { id: string }) => d.id === key.id);
  assert.equal(listed.online, true);

  const gone = new Promise((r) => c.on('client.disconnected', r));
  const revoke = await runCli(['devices', 'revoke', key.id.slice(0, 12)], { home: home.dir });
  assert.equal(revoke.code, 0, revoke.stderr);
  await gone;
  const again = await device().connect().then(() => null, (e: unknown) => e as CarapaceError);
  assert.equal(again?.details?.reason, 'revoked');
});

test('the client verifies the hello signature with the pinned key and refuses a gateway whose key differs', async (t) => {
  const home = tempHome('bus-pin');
  t.after(home.cleanup);
  const gw = await spawnGateway(home.dir);
  t.after(() => gw.stop('SIGKILL'));
  const owner = readKeyFile(home.paths.ownerKey);
  const gwKey = JSON.parse(readFileSync(home.paths.gatewayKey, 'utf8')) as { id: string; publicKey: string };
  const url = `ws://127.0.0.1:${gw.port}/ws`;
  const spy = nodeClient({ url, key: owner, pin: gwKey, scopes: ['operator.read'], reconnect: false });
  const hello = await spy.connect();
  spy.close();
  // The hello's signature covers gatewayId, deviceId and the nonce; a hello for another nonce must not verify.
  assert.equal(nodeVerify(helloPayload({ gatewayId: gwKey.id, deviceId: owner.id, nonce: 'A'.repeat(43) + '=' }), hello.signature, gwKey.publicKey), false);
  const impostor = generateKeyPair();
  const wrongPin = nodeClient({ url, key: owner, pin: { id: impostor.id, publicKey: impostor.publicKeyB64 }, scopes: ['operator.read'], reconnect: false });
  const err = await wrongPin.connect().then(() => null, (e: unknown) => e as CarapaceError);
  assert.equal(err?.code, 'UNAUTHORIZED');
  assert.equal(err?.details?.reason, 'gateway-key');
});

test('`carapace status` reports the bus and `carapace config set` goes through the gateway, audited as the owner device', async (t) => {
  const home = tempHome('bus-status');
  t.after(home.cleanup);
  const gw = await spawnGateway(home.dir);
  t.after(() => gw.stop('SIGKILL'));
  const status = await runCli(['status', '--json'], { home: home.dir });
  assert.equal(status.code, 0, status.stderr);
  const s = JSON.parse(status.stdout);
  assert.equal(s.gateway.up, true);
  assert.equal(s.home, home.dir);
  assert.equal(typeof s.gateway.id, 'string');
  assert.equal(typeof s.bus.sockets, 'number');
  assert.equal(s.agent.sessions, 0, 'the stored sessions are counted');
  assert.deepEqual(s.channels.list, [{ id: 'webchat', state: 'running' }], 'each configured channel with its state');
  const human = await runCli(['status'], { home: home.dir });
  assert.match(human.stdout, /^sessions: 0 \(0 active, 0 runs in progress\)$/m);
  assert.match(human.stdout, /^channels: webchat running$/m);
  assert.match(human.stdout, /^plugins: \d+ \(\d+ stopped; a stopped plugin starts on first use\)$/m);

  const set = await runCli(['config', 'set', 'logging.level', 'debug'], { home: home.dir });
  assert.equal(set.code, 0, set.stderr);
  const bad = await runCli(['config', 'set', 'gateway.port', '"nope"'], { home: home.dir });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /gateway\/port/);
  await gw.stop('SIGTERM');
  const owner = readKeyFile(home.paths.ownerKey);
  const db = new Database(home.paths.db, { readonly: true });
  try {
    const rows = db.prepare("SELECT actor, data FROM audit WHERE action = 'config.set'").all() as { actor: string; data: string }[];
    assert.equal(rows.length, 1);
    assert.equal(rows[0].actor, `device:${owner.id}`);
    assert.deepEqual(JSON.parse(rows[0].data).paths, ['/logging/level']);
  } finally {
    db.close();
  }
});
