import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { ensureHome } from '../../core/home.ts';
import { openDb, type Db } from '../../core/store/db.ts';
import { systemClock } from '../../core/clock.ts';
import { silentLogger } from '../../core/log/logger.ts';
import { createDeliveryQueue, type DeliveryOptions } from '../../core/channels/delivery.ts';
import type { OutboundMessage } from '../../core/plugin-api.ts';
import { tempHome } from '../helpers/home.ts';
import { startSink, httpSender } from '../helpers/sink.ts';
import { exited } from '../helpers/cli.ts';

const CHILD = fileURLToPath(new URL('./fixtures/delivery-child.ts', import.meta.url));

function store(t: import('node:test').TestContext): { db: Db; path: string; reopen(): Db } {
  const home = tempHome('delivery');
  ensureHome(home.paths);
  const dbs: Db[] = [openDb(home.paths.db)];
  t.after(() => {
    for (const d of dbs) if (d.open) d.close();
    home.cleanup();
  });
  return { db: dbs[0], path: home.paths.db, reopen: () => (dbs.push(openDb(home.paths.db)), dbs.at(-1)!) };
}

function queueOn(db: Db, extra: Partial<DeliveryOptions> = {}) {
  return createDeliveryQueue({ db, clock: systemClock, log: silentLogger, baseDelayMs: 5, maxDelayMs: 50, ...extra });
}

const msg = (i: number, chat = 'c1'): OutboundMessage => ({ channel: 'sink', chatId: chat, text: `m${i}`, idempotencyKey: `key-${i}` });

test('an enqueued message is on disk before the sender is called', async (t) => {
  const { db } = store(t);
  const q = queueOn(db);
  let rowsAtSend = -1;
  q.setSender('sink', async () => {
    rowsAtSend = (db.prepare("SELECT COUNT(*) AS n FROM channel_outbox WHERE idempotency_key = 'key-1'").get() as { n: number }).n;
    return { platformMessageId: 'p1' };
  });
  q.start();
  q.enqueue(msg(1));
  await q.drained();
  await q.stop();
  assert.equal(rowsAtSend, 1);
  assert.equal(q.counts().delivered, 1);
});

test('an idempotency key enqueued twice is sent once', async (t) => {
  const { db } = store(t);
  const sink = await startSink();
  t.after(sink.close);
  const q = queueOn(db);
  q.setSender('sink', httpSender(sink.url));
  q.start();
  assert.equal(q.enqueue(msg(1)).duplicate, false);
  assert.equal(q.enqueue(msg(1)).duplicate, true);
  await q.drained();
  await q.stop();
  assert.equal(sink.receipts.length, 1);
});

test('messages to one chat arrive in order even when some sends fail', async (t) => {
  const { db } = store(t);
  const sink = await startSink({ failRate: 0.4 });
  t.after(sink.close);
  const q = queueOn(db, { maxAttempts: 40 });
  q.setSender('sink', httpSender(sink.url));
  q.start();
  q.enqueueMany(Array.from({ length: 30 }, (_, i) => msg(i)));
  await q.drained();
  await q.stop();
  assert.deepEqual(sink.order.map((o) => o.text), Array.from({ length: 30 }, (_, i) => `m${i}`));
});

test('messages queued while the gateway was down are sent after restart', async (t) => {
  const s = store(t);
  const first = queueOn(s.db);
  first.start(); // no sender for the channel: everything stays queued
  for (let i = 0; i < 5; i++) first.enqueue(msg(i, `c${i}`));
  await first.stop();
  s.db.close();
  const sink = await startSink();
  t.after(sink.close);
  const second = queueOn(s.reopen());
  second.setSender('sink', httpSender(sink.url));
  second.start();
  await second.drained();
  await second.stop();
  assert.equal(sink.applied.size, 5);
});

test('a non-retryable failure is dead-lettered at once with its reason', async (t) => {
  const { db } = store(t);
  const q = queueOn(db);
  let calls = 0;
  q.setSender('sink', async () => {
    calls++;
    throw { retryable: false, message: 'chat not found' };
  });
  q.start();
  q.enqueue(msg(1));
  await q.drained();
  await q.stop();
  assert.equal(calls, 1);
  const [dead] = q.deadLetters();
  assert.match(dead.reason, /not retryable: chat not found/);
  assert.deepEqual({ dead: q.counts().dead, pending: q.counts().pending }, { dead: 1, pending: 0 });
});

test('a message that keeps failing is dead-lettered after the attempt limit', async (t) => {
  const { db } = store(t);
  const q = queueOn(db, { maxAttempts: 3, baseDelayMs: 1 });
  let calls = 0;
  q.setSender('sink', async () => {
    calls++;
    throw { retryable: true, message: 'HTTP 503' };
  });
  q.start();
  q.enqueue(msg(1));
  await q.drained();
  await q.stop();
  assert.equal(calls, 3);
  assert.match(q.deadLetters()[0].reason, /gave up after 3 attempts: HTTP 503/);
});

test("a platform's Retry-After is honoured before the next attempt", async (t) => {
  const { db } = store(t);
  const sink = await startSink();
  t.after(sink.close);
  sink.throttle = { count: 1, retryAfterS: 0.2 };
  const q = queueOn(db, { baseDelayMs: 1 });
  q.setSender('sink', httpSender(sink.url));
  q.start();
  q.enqueue(msg(1));
  await q.drained();
  await q.stop();
  assert.deepEqual(sink.receipts.map((r) => r.status), [429, 200]);
  assert.ok(sink.receipts[1].at - sink.receipts[0].at >= 199, 'second attempt waited for Retry-After');
});

test('a sink failing half the time then recovering gets every message, with backoff between attempts', async (t) => {
  const { db } = store(t);
  const sink = await startSink({ failRate: 0.5 });
  t.after(sink.close);
  // random() → just under 1: full jitter at its ceiling, so each wait is known: base·2^(n-1).
  const base = 4;
  const q = queueOn(db, { baseDelayMs: base, maxDelayMs: 64, maxAttempts: 100, concurrency: 8, random: () => 0.999999 });
  q.setSender('sink', httpSender(sink.url));
  q.start();
  const total = 300;
  for (let i = 0; i < total; i++) q.enqueue(msg(i, `chat-${i % 20}`));
  setTimeout(() => (sink.failRate = 0), 300); // the outage ends
  await q.drained();
  await q.stop();
  assert.equal(sink.applied.size, total, 'nothing dropped');
  assert.deepEqual(q.counts(), { pending: 0, inFlight: 0, delivered: total, dead: 0, retries: q.counts().retries });
  assert.ok(q.counts().retries > 0, 'failures were retried');
  // Backoff: between a failed attempt n and the next one, at least base·2^(n-1) ms passed (capped).
  const byKey = new Map<string, number[]>();
  for (const r of sink.receipts) byKey.set(r.key, [...(byKey.get(r.key) ?? []), r.at]);
  let checked = 0;
  for (const times of byKey.values()) {
    for (let n = 1; n < times.length; n++) {
      const expected = Math.min(64, base * 2 ** (n - 1));
      assert.ok(times[n] - times[n - 1] >= expected - 1.5, `attempt ${n + 1} came ${times[n] - times[n - 1]} ms after attempt ${n}, expected ≥ ${expected}`);
      checked++;
    }
  }
  assert.ok(checked > 0);
});

test('kill -9 of the delivery process at random points loses nothing and, with idempotency keys, delivers nothing twice', async (t) => {
  const COUNT = 1000;
  const CONCURRENCY = 8;
  for (let round = 0; round < 3; round++) {
    const home = tempHome('kill9');
    ensureHome(home.paths);
    const sink = await startSink({ failRate: 0.05 });
    const accepted = new Set<number>();
    let kills = 0;
    const progress: string[] = [];
    try {
      for (;;) {
        const child = spawn(process.execPath, [CHILD, home.paths.db, sink.url, String(COUNT)], { stdio: ['ignore', 'pipe', 'pipe'] });
        let buf = '';
        let err = '';
        let drained = false;
        child.stdout.on('data', (d: Buffer) => {
          buf += d.toString();
          const lines = buf.split('\n');
          buf = lines.pop()!;
          for (const l of lines) {
            if (l.startsWith('A ')) accepted.add(Number(l.slice(2)));
            else if (l === 'DRAINED') drained = true;
          }
        });
        child.stderr.on('data', (d: Buffer) => (err += d.toString()));
        if (kills < 4) {
          // Shoot at a random point after this run has started accepting and sending.
          const before = accepted.size;
          const deadline = Date.now() + 5000;
          while (accepted.size === before && child.exitCode === null && Date.now() < deadline) await delay(5);
          await delay(Math.floor(Math.random() * 300));
          if (child.exitCode === null) {
            child.kill('SIGKILL');
            kills++;
            progress.push(`${accepted.size} accepted/${sink.applied.size} delivered`);
          }
        }
        const { code, signal } = await exited(child);
        if (signal === 'SIGKILL') continue;
        assert.equal(code, 0, `delivery process failed: ${err}`);
        assert.ok(drained, 'the last run drained the queue');
        break;
      }
      assert.ok(kills >= 1, 'the process was killed at least once');
      for (const i of accepted) assert.ok(sink.applied.has(`k-${i}`), `accepted message ${i} was never delivered`);
      assert.equal(sink.applied.size, COUNT);
      const db = openDb(home.paths.db);
      const states = db.prepare('SELECT state, COUNT(*) AS n FROM channel_outbox GROUP BY state').all();
      db.close();
      assert.deepEqual(states, [{ state: 'delivered', n: COUNT }]);
      // Re-sends after a crash are only the few in flight (or completed but not yet marked) when it died.
      const resent = sink.receipts.filter((r) => r.status === 200).length - sink.applied.size;
      t.diagnostic(`round ${round}: killed at ${progress.join(', ')}; ${resent} re-sends answered by the key`);
      assert.ok(resent <= kills * 3 * CONCURRENCY, `${resent} re-sends after ${kills} kills`);
    } finally {
      await sink.close();
      home.cleanup();
    }
  }
});
