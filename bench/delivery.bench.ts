// delivery: 10,000 outbound messages through the durable queue (SQLite WAL,
// synchronous=FULL, one commit per enqueue) to a loopback HTTP sink, against an
// in-memory array queue sending to the same sink with the same concurrency.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeReport } from './lib.ts';
import { openDb } from '../core/store/db.ts';
import { systemClock } from '../core/clock.ts';
import { silentLogger } from '../core/log/logger.ts';
import { createDeliveryQueue, type Sender } from '../core/channels/delivery.ts';
import type { OutboundMessage } from '../core/plugin-api.ts';
import { startSink, httpSender } from '../test/helpers/sink.ts';

const N = Number(process.env.DELIVERY_BENCH_N ?? 10_000);
const CONCURRENCY = 8;
const report = makeReport();
const message = (run: string, i: number): OutboundMessage => ({ channel: 'sink', chatId: `chat-${i % 100}`, text: `message ${i} ${'x'.repeat(80)}`, idempotencyKey: `${run}-${i}` });

async function inMemory(send: Sender): Promise<number> {
  const t0 = performance.now();
  const queue: OutboundMessage[] = [];
  for (let i = 0; i < N; i++) queue.push(message('mem', i));
  const worker = async () => {
    for (let m = queue.shift(); m; m = queue.shift()) await send(m);
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return performance.now() - t0;
}

async function durable(send: Sender): Promise<{ total: number; enqueue: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'carapace-bench-delivery-'));
  const db = openDb(join(dir, 'carapace.db'));
  try {
    const q = createDeliveryQueue({ db, clock: systemClock, log: silentLogger, concurrency: CONCURRENCY });
    q.setSender('sink', send);
    q.start();
    const t0 = performance.now();
    for (let i = 0; i < N; i++) q.enqueue(message('durable', i));
    const enqueue = performance.now() - t0;
    await q.drained();
    const total = performance.now() - t0;
    await q.stop();
    if (q.counts().delivered !== N) throw new Error(`delivered ${q.counts().delivered} of ${N}`);
    return { total, enqueue };
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const sink = await startSink();
const send = httpSender(sink.url);
await inMemory(send); // warm up the HTTP agent and JIT on a throwaway pass
sink.applied.clear();
const memMs = await inMemory(send);
const { total, enqueue } = await durable(send);
await sink.close();

const rate = (ms: number) => (N / ms) * 1000;
report({ bench: 'delivery', metric: 'durable_msgs_per_s', value: rate(total), unit: 'msg/s', baseline: rate(memMs), samples: N });
report({ bench: 'delivery', metric: 'durable_enqueue_per_s', value: rate(enqueue), unit: 'msg/s', baseline: null, samples: N });
report({ bench: 'delivery', metric: 'durable_total_ms', value: total, unit: 'ms', baseline: memMs, samples: N });
