import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import { createBroker, matches, covers } from '../../core/bus/broker.ts';
import { silentLogger } from '../../core/log/logger.ts';
import { CarapaceError } from '../../core/errors.ts';
import type { BusMessage } from '../../core/bus/types.ts';

const ALL = { publish: ['>'], subscribe: ['>'] };
const clock = { now: () => Date.now() };

test('topic patterns: * is exactly one segment, > is one or more trailing segments', () => {
  assert.equal(matches('a.b.*', 'a.b.c'), true);
  assert.equal(matches('a.b.*', 'a.b.c.d'), false);
  assert.equal(matches('a.b.*', 'a.b'), false);
  assert.equal(matches('a.>', 'a.b'), true);
  assert.equal(matches('a.>', 'a.b.c.d'), true);
  assert.equal(matches('a.>', 'a'), false);
  assert.equal(matches('>', 'anything.at.all'), true);
  assert.equal(matches('a.*.c', 'a.x.c'), true);
  assert.equal(matches('a.*.c', 'a.x.d'), false);
});

test('a subscription pattern is allowed only when the ACL pattern covers all it can match', () => {
  assert.equal(covers('a.>', 'a.b.*'), true);
  assert.equal(covers('a.*', 'a.>'), false);
  assert.equal(covers('a.*', 'a.b'), true);
  assert.equal(covers('a.b', 'a.*'), false);
  assert.equal(covers('>', 'x.>'), true);
});

test('ACL denies by default: publish and subscribe outside the grant throw FORBIDDEN', () => {
  const broker = createBroker({ log: silentLogger, clock });
  const port = broker.port('plugin:x', { publish: ['channel.outbound.x'], subscribe: ['channel.inbound.*'] });
  assert.throws(() => port.publish('channel.outbound.y', {}), (e: unknown) => e instanceof CarapaceError && e.code === 'FORBIDDEN');
  assert.throws(() => port.subscribe('channel.>', () => {}), (e: unknown) => e instanceof CarapaceError && e.code === 'FORBIDDEN');
  const none = broker.port('plugin:none', { publish: [], subscribe: [] });
  assert.throws(() => none.publish('a', {}), (e: unknown) => e instanceof CarapaceError && e.code === 'FORBIDDEN');
  assert.doesNotThrow(() => port.publish('channel.outbound.x', {}));
});

test('a subscriber receives one topic in publish order even when its handler is async', async () => {
  const broker = createBroker({ log: silentLogger, clock });
  const a = broker.port('kernel:a', ALL);
  const seen: number[] = [];
  a.subscribe('t.*', async (m) => {
    await tick();
    seen.push(m.payload as number);
  });
  for (let i = 0; i < 100; i++) a.publish('t.x', i);
  while (seen.length < 100) await tick();
  assert.deepEqual(seen, [...Array(100).keys()]);
});

test('a repeated idempotency key from the same publisher is delivered once and returns the first message', async () => {
  const broker = createBroker({ log: silentLogger, clock });
  const a = broker.port('kernel:a', ALL);
  const got: BusMessage[] = [];
  a.subscribe('t', (m) => void got.push(m));
  const m1 = a.publish('t', 1, { idempotencyKey: 'k' });
  const m2 = a.publish('t', 2, { idempotencyKey: 'k' });
  await tick();
  assert.equal(m1.id, m2.id);
  assert.equal(got.length, 1);
  assert.equal(m1.from, 'kernel:a');
});

test('a subscriber whose queue is full loses further messages without blocking the publisher or other subscribers', async () => {
  const broker = createBroker({ log: silentLogger, clock, queueLimit: 4 });
  const a = broker.port('kernel:a', ALL);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const slow: number[] = [];
  const fast: number[] = [];
  a.subscribe('t', async (m) => {
    await gate;
    slow.push(m.payload as number);
  });
  a.subscribe('t', (m) => void fast.push(m.payload as number));
  for (let i = 0; i < 20; i++) {
    a.publish('t', i);
    await tick();
  }
  assert.equal(fast.length, 20);
  release();
  await tick();
  await tick();
  assert.ok(slow.length <= 5, `slow got ${slow.length}`);
  assert.ok(broker.stats().dropped >= 15);
});

test('closing a port ends its subscriptions', async () => {
  const broker = createBroker({ log: silentLogger, clock });
  const a = broker.port('kernel:a', ALL);
  const b = broker.port('kernel:b', ALL);
  const got: unknown[] = [];
  b.subscribe('t', (m) => void got.push(m));
  b.close();
  a.publish('t', 1);
  await tick();
  assert.equal(got.length, 0);
  assert.equal(broker.stats().subscriptions, 0);
});

test('a message reaches exact and wildcard subscribers of its topic, and none of another topic', async () => {
  const broker = createBroker({ log: silentLogger, clock });
  const port = broker.port('kernel:test', ALL);
  const got: string[] = [];
  port.subscribe('a.b.c', (m) => void got.push(`exact:${m.topic}`));
  port.subscribe('a.b.c', (m) => void got.push(`exact2:${m.topic}`));
  port.subscribe('a.*.c', (m) => void got.push(`star:${m.topic}`));
  port.subscribe('a.>', (m) => void got.push(`tail:${m.topic}`));
  port.subscribe('a.b.d', (m) => void got.push(`other:${m.topic}`));
  port.publish('a.b.c', 1);
  await tick();
  assert.deepEqual(got.sort(), ['exact2:a.b.c', 'exact:a.b.c', 'star:a.b.c', 'tail:a.b.c']);
  broker.close();
});

test('an unsubscribed exact subscription gets nothing more while its twin still does', async () => {
  const broker = createBroker({ log: silentLogger, clock });
  const port = broker.port('kernel:test', ALL);
  const got: string[] = [];
  const off = port.subscribe('x.y', () => void got.push('first'));
  port.subscribe('x.y', () => void got.push('second'));
  off();
  port.publish('x.y', 1);
  await tick();
  assert.deepEqual(got, ['second']);
  assert.equal(broker.stats().subscriptions, 1);
  broker.close();
});

test('publishing outside the ACL is refused even when a subscriber of that topic exists', () => {
  const broker = createBroker({ log: silentLogger, clock });
  broker.port('kernel:listener', ALL).subscribe('secret.topic', () => {});
  const device = broker.port('device:d', { publish: ['device.>'], subscribe: [] });
  assert.throws(() => device.publish('secret.topic', 1), (e: unknown) => e instanceof CarapaceError && e.code === 'FORBIDDEN');
  assert.throws(() => device.publish('device', 1), (e: unknown) => e instanceof CarapaceError && e.code === 'FORBIDDEN');
  assert.doesNotThrow(() => device.publish('device.a.b', 1));
  broker.close();
});
