import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { startBus, generateKeyPair } from '../helpers/bus.ts';
import { CarapaceError } from '../../core/errors.ts';
import type { BusClient } from '../../core/client/client.ts';
import { until } from '../helpers/wait.ts';

async function refused(p: Promise<unknown>): Promise<CarapaceError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof CarapaceError, String(err));
    return err;
  }
  assert.fail('expected the connect to be refused');
}

function fakeClock(start = Date.now()) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}


test('an unknown, correctly signed device gets PAIRING_REQUIRED with a Crockford code, and operators with operator.pairing hear of it', async (t) => {
  const env = await startBus();
  t.after(() => env.stop());
  const owner = await env.ownerClient();
  const heard: any[] = [];
  owner.on('device.pairing.requested', (p) => void heard.push(p));
  const key = generateKeyPair();
  const err = await refused(env.client(key, { scopes: ['operator.read'] }).connect());
  assert.equal(err.code, 'PAIRING_REQUIRED');
  assert.match(err.details!.code as string, /^[0-9ABCDEFGHJKMNPQRSTVWXYZ]{4}-[0-9ABCDEFGHJKMNPQRSTVWXYZ]{4}$/);
  assert.equal(typeof err.details!.requestId, 'string');
  assert.ok((err.details!.expiresAt as number) > Date.now());
  await until('the device.pairing.requested event', () => heard.length > 0);
  assert.equal(heard[0].code, err.details!.code);
  assert.equal(heard[0].deviceId, key.id);
  const { requests } = await owner.request<{ requests: any[] }>('devices.pending');
  assert.deepEqual(requests.map((r) => r.code), [err.details!.code]);
});

test('a device reconnecting while pending gets the same code, not a second request', async (t) => {
  const env = await startBus();
  t.after(() => env.stop());
  const key = generateKeyPair();
  const a = await refused(env.client(key).connect());
  const b = await refused(env.client(key).connect());
  assert.equal(a.details!.code, b.details!.code);
});

test('a rejected request is gone and the device must ask again', async (t) => {
  const env = await startBus();
  t.after(() => env.stop());
  const owner = await env.ownerClient();
  const key = generateKeyPair();
  const first = await refused(env.client(key).connect());
  await owner.request('devices.reject', { code: first.details!.code });
  assert.deepEqual((await owner.request<{ requests: unknown[] }>('devices.pending')).requests, []);
  const again = await refused(env.client(key).connect());
  assert.equal(again.code, 'PAIRING_REQUIRED');
  assert.notEqual(again.details!.requestId, first.details!.requestId);
  const audit = env.gw.ctx.audit.list({ action: 'device.reject' });
  assert.equal(audit.length, 1);
  assert.equal(audit[0].actor, `device:${env.owner.id}`);
});

test('an approved device connects with only the scopes it was granted', async (t) => {
  const env = await startBus();
  t.after(() => env.stop());
  const owner = await env.ownerClient();
  const key = generateKeyPair();
  const err = await refused(env.client(key, { scopes: ['operator.read', 'operator.admin'] }).connect());
  // The code can be typed in lower case and without the dash.
  await owner.request('devices.approve', { code: (err.details!.code as string).toLowerCase().replace('-', ''), scopes: ['operator.read'] });
  const denied = await refused(env.client(key, { scopes: ['operator.read', 'operator.admin'] }).connect());
  assert.equal(denied.code, 'FORBIDDEN');
  assert.equal(denied.details!.missingScope, 'operator.admin');
  const c = env.client(key, { scopes: ['operator.read'] });
  const hello = await c.connect();
  assert.deepEqual(hello.device.scopes, ['operator.read']);
  assert.equal((await c.request<{ ok: boolean }>('health')).ok, true);
  const approvals = env.gw.ctx.audit.list({ action: 'device.approve' });
  assert.deepEqual(approvals.map((a) => a.target), [key.id]);
});

test('a device holding operator.pairing cannot grant a scope it does not hold', async (t) => {
  const env = await startBus();
  t.after(() => env.stop());
  const owner = await env.ownerClient();
  const helper = generateKeyPair();
  const e1 = await refused(env.client(helper, { scopes: ['operator.pairing'] }).connect());
  await owner.request('devices.approve', { code: e1.details!.code, scopes: ['operator.pairing'] });
  const h = env.client(helper, { scopes: ['operator.pairing'] });
  await h.connect();
  const stranger = generateKeyPair();
  const e2 = await refused(env.client(stranger).connect());
  const e3 = await refused(h.request('devices.approve', { code: e2.details!.code, scopes: ['operator.admin'] }));
  assert.equal(e3.code, 'FORBIDDEN');
  assert.equal(e3.details!.missingScope, 'operator.admin');
  assert.equal((await owner.request<{ requests: unknown[] }>('devices.pending')).requests.length, 1, 'the request is still pending');
});

test('a one-time invite code pairs a device on the spot, and only once', async (t) => {
  const env = await startBus();
  t.after(() => env.stop());
  const owner = await env.ownerClient();
  const inv = await owner.request<{ code: string; scopes: string[] }>('devices.invite', { scopes: ['operator.read'] });
  const phone = generateKeyPair();
  const hello = await env.client(phone, { scopes: ['operator.read'], pairingCode: inv.code }).connect();
  assert.deepEqual(hello.device.scopes, ['operator.read']);
  const other = generateKeyPair();
  const err = await refused(env.client(other, { scopes: ['operator.read'], pairingCode: inv.code }).connect());
  assert.equal(err.code, 'PAIRING_REQUIRED');
  assert.equal(err.details!.pairingCode, 'invalid');
});

test('five wrong invite codes burn the open invite', async (t) => {
  const env = await startBus();
  t.after(() => env.stop());
  const owner = await env.ownerClient();
  const inv = await owner.request<{ code: string }>('devices.invite', {});
  const guesser = generateKeyPair();
  for (let i = 0; i < 5; i++) {
    const wrong = `0000-000${i}`;
    assert.notEqual(wrong, inv.code);
    const e = await refused(env.client(guesser, { pairingCode: wrong }).connect());
    assert.equal(e.details!.pairingCode, 'invalid');
  }
  const late = await refused(env.client(generateKeyPair(), { pairingCode: inv.code }).connect());
  assert.equal(late.code, 'PAIRING_REQUIRED');
  assert.equal(late.details!.pairingCode, 'invalid');
});

test('a pairing request expires after 10 minutes and can no longer be approved', async (t) => {
  const clock = fakeClock();
  const env = await startBus({ clock });
  t.after(() => env.stop());
  const key = generateKeyPair();
  const err = await refused(env.client(key).connect());
  clock.advance(10 * 60_000 + 1);
  const owner = await env.ownerClient();
  assert.deepEqual((await owner.request<{ requests: unknown[] }>('devices.pending')).requests, []);
  const e = await refused(owner.request('devices.approve', { code: err.details!.code }));
  assert.equal(e.code, 'NOT_FOUND');
});

test('an invite expires', async (t) => {
  const clock = fakeClock();
  const env = await startBus({ clock });
  t.after(() => env.stop());
  const owner = await env.ownerClient();
  const inv = await owner.request<{ code: string }>('devices.invite', { ttlMs: 60_000 });
  clock.advance(60_001);
  const e = await refused(env.client(generateKeyPair(), { pairingCode: inv.code }).connect());
  assert.equal(e.code, 'PAIRING_REQUIRED');
});

test('at most 16 pairing requests wait at once; the 17th device is told to retry later', async (t) => {
  const clock = fakeClock();
  const env = await startBus({ clock });
  t.after(() => env.stop());
  for (let i = 0; i < 16; i++) {
    if (i % 8 === 7) clock.advance(61_000); // stay under the failed-handshake lockout, which is a different limit
    assert.equal((await refused(env.client(generateKeyPair()).connect())).code, 'PAIRING_REQUIRED');
  }
  clock.advance(61_000);
  const e = await refused(env.client(generateKeyPair()).connect());
  assert.equal(e.code, 'RATE_LIMITED');
  assert.ok((e.details!.retryAfterMs as number) > 0);
});

test('revoking a device closes its live socket at once, and it stays refused after a restart', async (t) => {
  const env = await startBus();
  let env2: Awaited<ReturnType<typeof startBus>> | null = null;
  t.after(async () => {
    await env2?.stop();
    env.home.cleanup();
  });
  const owner = await env.ownerClient();
  const key = generateKeyPair();
  const err = await refused(env.client(key).connect());
  await owner.request('devices.approve', { code: err.details!.code });
  const dev: BusClient = env.client(key);
  await dev.connect();
  const gone = new Promise((r) => dev.on('client.disconnected', r));
  const res = await owner.request<{ closedSockets: number }>('devices.revoke', { deviceId: key.id });
  assert.equal(res.closedSockets, 1);
  await gone;
  const again = await refused(env.client(key).connect());
  assert.equal(again.code, 'UNAUTHORIZED');
  assert.equal(again.details!.reason, 'revoked');
  await env.stop({ keepHome: true });
  env2 = await startBus({ home: env.home });
  const afterRestart = await refused(env2.client(key).connect());
  assert.equal(afterRestart.details!.reason, 'revoked');
});

test('the owner key is always paired and cannot be revoked', async (t) => {
  const env = await startBus();
  t.after(() => env.stop());
  const owner = await env.ownerClient();
  const { devices } = await owner.request<{ devices: any[] }>('devices.list');
  assert.equal(devices[0].id, env.owner.id);
  assert.equal(devices[0].owner, true);
  const e = await refused(owner.request('devices.revoke', { deviceId: env.owner.id }));
  assert.equal(e.code, 'CONFLICT');
});

test('operators hear presence: a device coming online and going offline, counted by its sockets', async (t) => {
  const env = await startBus();
  t.after(() => env.stop());
  const owner = await env.ownerClient();
  const heard: { deviceId: string; role: string; online: boolean; connections: number; ts: number }[] = [];
  owner.on('presence', (p) => void heard.push(p as (typeof heard)[number]));
  const key = generateKeyPair();
  const err = await refused(env.client(key, { scopes: ['operator.read'] }).connect());
  await owner.request('devices.approve', { code: err.details!.code, scopes: ['operator.read'] });
  assert.equal(heard.filter((p) => p.deviceId === key.id).length, 0, 'a refused handshake is not presence');
  const first = env.client(key, { scopes: ['operator.read'] });
  await first.connect();
  const second = env.client(key, { scopes: ['operator.read'] });
  await second.connect();
  await until('two arrivals', () => heard.filter((p) => p.deviceId === key.id).length === 2);
  first.close();
  await until('one departure', () => heard.filter((p) => p.deviceId === key.id).length === 3);
  second.close();
  await until('the last departure', () => heard.filter((p) => p.deviceId === key.id).length === 4);
  const mine = heard.filter((p) => p.deviceId === key.id);
  assert.deepEqual(mine.map((p) => [p.online, p.connections]), [[true, 1], [true, 2], [true, 1], [false, 0]]);
  assert.ok(mine.every((p) => p.role === 'operator' && typeof p.ts === 'number'));
});
