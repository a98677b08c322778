import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startBus } from '../helpers/bus.ts';
import { nodeClient } from '../../core/client/node.ts';
import { OPERATOR_SCOPES } from '../../core/bus/devices.ts';
import type { BusMessage } from '../../core/client/client.ts';

test('the client reconnects after the gateway drops it and resumes its subscriptions', async (t) => {
  const env = await startBus();
  t.after(() => env.stop());
  const sub = nodeClient({ url: env.url, key: env.owner, pin: env.pin, scopes: [...OPERATOR_SCOPES], backoff: { minMs: 20, maxMs: 200 } });
  t.after(() => sub.close());
  await sub.connect();
  const got: BusMessage[] = [];
  await sub.subscribe(['device.room.*'], (m) => void got.push(m));
  const back = new Promise((r) => sub.on('client.reconnected', r));
  assert.equal(env.bus.disconnectDevice(env.owner.id, 'test'), 1);
  await back;
  const pub = await env.ownerClient();
  await pub.publish('device.room.a', { n: 1 });
  while (got.length === 0) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(got[0].payload, { n: 1 });
  assert.equal(got[0].from, `device:${env.owner.id}`, 'the broker stamps the publisher');
});

test('a request retried with the same idempotencyKey returns the first result without a second effect', async (t) => {
  const env = await startBus();
  t.after(() => env.stop());
  let runs = 0;
  env.bus.methods.register('test.effect', { scope: 'operator.write', idempotent: true, handler: () => ({ run: ++runs }) });
  const a = await env.ownerClient();
  const first = await a.request('test.effect', { idempotencyKey: 'once' });
  a.close();
  const b = await env.ownerClient();
  const second = await b.request('test.effect', { idempotencyKey: 'once' });
  assert.deepEqual(second, first);
  assert.equal(runs, 1);
  const missing = (await b.request('test.effect', {}).catch((e: unknown) => e)) as { code: string };
  assert.equal(missing.code, 'INVALID_REQUEST');
});

test('bus.publish with a repeated idempotencyKey delivers once', async (t) => {
  const env = await startBus();
  t.after(() => env.stop());
  const c = await env.ownerClient();
  const got: BusMessage[] = [];
  await c.subscribe(['device.x'], (m) => void got.push(m));
  const m1 = await c.publish('device.x', 1, 'same');
  const m2 = await c.publish('device.x', 2, 'same');
  assert.equal(m1.id, m2.id);
  await c.request('health');
  assert.equal(got.length, 1);
});

test('logs.tail streams log records to an admin', async (t) => {
  const env = await startBus();
  t.after(() => env.stop());
  const c = await env.ownerClient();
  const lines: any[] = [];
  c.on('log', (p) => void lines.push(p));
  await c.request('logs.tail', {});
  env.gw.ctx.log.info('hello from the test', { marker: 42 });
  while (!lines.some((l) => l.marker === 42)) await new Promise((r) => setTimeout(r, 5));
});
