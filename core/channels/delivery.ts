import type { Db } from '../store/db.ts';
import type { Clock } from '../clock.ts';
import type { Logger } from '../log/logger.ts';
import type { OutboundMessage } from '../plugin-api.ts';
import { parseOutbound } from './envelope.ts';

// The durable outbound queue. This module is the only writer of `channel_outbox`.
//
// - enqueue() commits the row (WAL, synchronous=FULL) before it returns, and
//   nothing is sent before that: an accepted message survives a crash.
// - Messages to one chat (a "lane") go out in order, one at a time; lanes run
//   concurrently up to `concurrency`.
// - Failures are retried with exponential backoff and full jitter, never sooner
//   than the platform's retryAfterMs; after maxAttempts (or a non-retryable error)
//   the row is dead-lettered with its reason. A missing sender (channel plugin not
//   running) parks the lane without spending attempts.
// - After a crash every row not marked delivered is sent again with the same
//   idempotency key, so a platform that honours the key sees it once. Marking
//   "delivered" is batched (one commit per burst): losing that mark costs only a
//   re-send that the key makes harmless.
// Failures are classified by the thrown value: retryable unless it says `retryable: false`.

// A "delivered" mark may wait this long (or for this many siblings) before its
// commit: one fsync per burst instead of per message. A crash inside the window
// only means those messages are sent again under the same idempotency key.
const MARK_FLUSH_MS = 20;
const MARK_BATCH = 256;

export type Sender = (msg: OutboundMessage) => Promise<{ platformMessageId?: string } | void>;

/** What a sender throws for a failure: retryable unless it says `retryable: false`. */
export interface SendFailure {
  retryable?: boolean;
  retryAfterMs?: number;
  message?: string;
}

export interface DeliveryOptions {
  db: Db;
  clock: Clock;
  log: Logger;
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  concurrency?: number;
  /** How long a "delivered" mark may wait for siblings before its commit (default 20 ms; 0 = next turn). */
  markFlushMs?: number;
  /** [0, 1): injectable so backoff can be tested deterministically. */
  random?: () => number;
}

export interface DeliveryCounts {
  pending: number;
  inFlight: number;
  delivered: number;
  dead: number;
  retries: number;
}

export interface DeadLetter {
  id: number;
  idempotencyKey: string;
  channel: string;
  chatId: string;
  attempts: number;
  reason: string;
  updatedAt: number;
}

export interface DeliveryQueue {
  /** Persist one message; `duplicate` when its idempotency key was enqueued before (it is not sent again). */
  enqueue(msg: OutboundMessage, opts?: { sessionKey?: string }): { id: number; duplicate: boolean };
  /** Persist several messages (the chunks of one reply) in one transaction, in order. */
  enqueueMany(msgs: OutboundMessage[], opts?: { sessionKey?: string }): { id: number; duplicate: boolean }[];
  /** Install (or replace) the sender for a channel; parked messages for it start moving. */
  setSender(channel: string, sender: Sender): void;
  removeSender(channel: string): void;
  /** Load every undelivered row and start sending. */
  start(): void;
  /** Stop sending; waits for in-flight sends and flushes delivery marks. */
  stop(): Promise<void>;
  counts(): DeliveryCounts;
  deadLetters(limit?: number): DeadLetter[];
  /** Resolves when nothing is pending or in flight (tests, benches, graceful drain). */
  drained(): Promise<void>;
}

interface Item {
  id: number;
  message: OutboundMessage;
  attempts: number;
  nextAttemptAt: number;
}

export function laneOf(m: OutboundMessage): string {
  return JSON.stringify([m.channel, m.account ?? 'default', m.chatId, m.threadId ?? null]);
}

export function createDeliveryQueue(opts: DeliveryOptions): DeliveryQueue {
  const { db, clock, log } = opts;
  const maxAttempts = opts.maxAttempts ?? 8;
  const baseDelay = opts.baseDelayMs ?? 1000;
  const maxDelay = opts.maxDelayMs ?? 5 * 60_000;
  const concurrency = opts.concurrency ?? 8;
  const random = opts.random ?? Math.random;
  const markFlushMs = opts.markFlushMs ?? MARK_FLUSH_MS;
  // Durability is the point of this table: never run it on a relaxed connection.
  db.pragma('synchronous = FULL');

  const insert = db.prepare(
    "INSERT INTO channel_outbox (idempotency_key, channel, lane, message, session_key, state, next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?) ON CONFLICT(idempotency_key) DO NOTHING",
  );
  const byKey = db.prepare('SELECT id FROM channel_outbox WHERE idempotency_key = ?');
  const open = db.prepare("SELECT id, message, attempts, next_attempt_at FROM channel_outbox WHERE state = 'pending' ORDER BY id");
  const markDelivered = db.prepare("UPDATE channel_outbox SET state = 'delivered', attempts = ?, platform_message_id = ?, updated_at = ? WHERE id = ?");
  const markRetry = db.prepare('UPDATE channel_outbox SET attempts = ?, next_attempt_at = ?, last_error = ?, updated_at = ? WHERE id = ?');
  const markDead = db.prepare("UPDATE channel_outbox SET state = 'dead', attempts = ?, last_error = ?, updated_at = ? WHERE id = ?");
  const stateCounts = db.prepare('SELECT state, COUNT(*) AS n FROM channel_outbox GROUP BY state');
  const deadRows = db.prepare("SELECT id, idempotency_key, message, attempts, last_error, updated_at FROM channel_outbox WHERE state = 'dead' ORDER BY id DESC LIMIT ?");

  const senders = new Map<string, Sender>();
  const lanes = new Map<string, Item[]>();
  const busy = new Set<string>();
  const ready = new Set<string>();
  const parked = new Map<string, Set<string>>(); // channel → lanes waiting for a sender
  const timers = new Map<string, NodeJS.Timeout>();
  const inflight = new Set<Promise<void>>();
  let running = false;
  let retries = 0;
  let pendingMarks: [number, string | null, number, number][] = [];
  let flushScheduled = false;
  let waiters: (() => void)[] = [];

  const flushMarks = db.transaction((marks: typeof pendingMarks) => {
    for (const m of marks) markDelivered.run(...m);
  });

  function flush(): void {
    flushScheduled = false;
    if (pendingMarks.length === 0) return;
    const marks = pendingMarks;
    pendingMarks = [];
    flushMarks(marks);
  }

  function isDrained(): boolean {
    return lanes.size === 0 && inflight.size === 0;
  }

  function notifyIfDrained(): void {
    if (!isDrained() || waiters.length === 0) return;
    flush();
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  }

  function consider(lane: string): void {
    if (!running || busy.has(lane) || timers.has(lane)) return;
    const head = lanes.get(lane)?.[0];
    if (!head) return;
    const wait = head.nextAttemptAt - clock.now();
    if (wait > 0) {
      timers.set(lane, setTimeout(() => {
        timers.delete(lane);
        consider(lane);
        pump();
      }, wait));
      return;
    }
    ready.add(lane);
  }

  function pump(): void {
    while (running && inflight.size < concurrency && ready.size > 0) {
      const lane = ready.values().next().value as string;
      ready.delete(lane);
      const head = lanes.get(lane)?.[0];
      if (!head) continue;
      const sender = senders.get(head.message.channel);
      if (!sender) {
        let set = parked.get(head.message.channel);
        if (!set) parked.set(head.message.channel, (set = new Set()));
        set.add(lane);
        continue;
      }
      busy.add(lane);
      const p: Promise<void> = attempt(lane, head, sender).finally(() => {
        inflight.delete(p);
        busy.delete(lane);
        consider(lane);
        pump();
        notifyIfDrained();
      });
      inflight.add(p);
    }
  }

  function done(lane: string): void {
    const q = lanes.get(lane)!;
    q.shift();
    if (q.length === 0) lanes.delete(lane);
  }

  async function attempt(lane: string, item: Item, sender: Sender): Promise<void> {
    const attempts = item.attempts + 1;
    let result: { platformMessageId?: string } | void;
    try {
      result = await sender(item.message);
    } catch (raw) {
      const err = (raw ?? {}) as SendFailure;
      const reason = String(err.message ?? raw).slice(0, 500);
      const now = clock.now();
      if (err.retryable === false || attempts >= maxAttempts) {
        markDead.run(attempts, err.retryable === false ? `not retryable: ${reason}` : `gave up after ${attempts} attempts: ${reason}`, now, item.id);
        log.warn('outbound message dead-lettered', { id: item.id, channel: item.message.channel, attempts, reason });
        done(lane);
        return;
      }
      const ceiling = Math.min(maxDelay, baseDelay * 2 ** (attempts - 1));
      const delay = Math.max(Math.floor(random() * ceiling), err.retryAfterMs ?? 0);
      item.attempts = attempts;
      item.nextAttemptAt = now + delay;
      retries++;
      markRetry.run(attempts, item.nextAttemptAt, reason, now, item.id);
      // The owner needs to see why (a wrong password, a certificate that does not verify), not only the final dead letter.
      log.warn('outbound delivery failed, will retry', { id: item.id, channel: item.message.channel, attempts, retryInMs: delay, reason });
      return;
    }
    pendingMarks.push([attempts, result?.platformMessageId ?? null, clock.now(), item.id]);
    if (pendingMarks.length >= MARK_BATCH) flush();
    else if (!flushScheduled) {
      flushScheduled = true;
      if (markFlushMs > 0) setTimeout(flush, markFlushMs);
      else setImmediate(flush);
    }
    done(lane);
  }

  function admit(item: Item): void {
    const lane = laneOf(item.message);
    const q = lanes.get(lane);
    if (q) q.push(item);
    else {
      lanes.set(lane, [item]);
      consider(lane);
    }
  }

  function insertOne(msg: OutboundMessage, sessionKey: string | undefined): { id: number; duplicate: boolean; item?: Item } {
    const m = parseOutbound(msg);
    const now = clock.now();
    const res = insert.run(m.idempotencyKey, m.channel, laneOf(m), JSON.stringify(m), sessionKey ?? null, now, now, now);
    if (res.changes === 0) return { id: (byKey.get(m.idempotencyKey) as { id: number }).id, duplicate: true };
    const id = Number(res.lastInsertRowid);
    return { id, duplicate: false, item: { id, message: m, attempts: 0, nextAttemptAt: now } };
  }

  const insertMany = db.transaction((msgs: OutboundMessage[], sessionKey: string | undefined) => msgs.map((m) => insertOne(m, sessionKey)));

  function accepted(rows: { id: number; duplicate: boolean; item?: Item }[]): { id: number; duplicate: boolean }[] {
    // Only after the commit above: nothing is sent that is not on disk.
    for (const r of rows) if (r.item && running) admit(r.item);
    if (running) queueMicrotask(pump);
    return rows.map(({ id, duplicate }) => ({ id, duplicate }));
  }

  return {
    enqueue: (msg, o) => accepted([insertOne(msg, o?.sessionKey)])[0],
    enqueueMany: (msgs, o) => accepted(insertMany(msgs, o?.sessionKey)),
    setSender(channel, sender) {
      senders.set(channel, sender);
      const set = parked.get(channel);
      parked.delete(channel);
      for (const lane of set ?? []) consider(lane);
      pump();
    },
    removeSender: (channel) => void senders.delete(channel),
    start() {
      if (running) return;
      running = true;
      for (const r of open.all() as { id: number; message: string; attempts: number; next_attempt_at: number }[]) {
        admit({ id: r.id, message: JSON.parse(r.message) as OutboundMessage, attempts: r.attempts, nextAttemptAt: r.next_attempt_at });
      }
      pump();
    },
    async stop() {
      running = false;
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
      ready.clear();
      await Promise.allSettled([...inflight]);
      flush();
      lanes.clear();
      parked.clear();
      const w = waiters;
      waiters = [];
      for (const f of w) f();
    },
    counts() {
      const by = Object.fromEntries((stateCounts.all() as { state: string; n: number }[]).map((r) => [r.state, r.n]));
      return { pending: by.pending ?? 0, inFlight: inflight.size, delivered: by.delivered ?? 0, dead: by.dead ?? 0, retries };
    },
    deadLetters(limit = 50) {
      return (deadRows.all(limit) as { id: number; idempotency_key: string; message: string; attempts: number; last_error: string; updated_at: number }[]).map((r) => {
        const m = JSON.parse(r.message) as OutboundMessage;
        return { id: r.id, idempotencyKey: r.idempotency_key, channel: m.channel, chatId: m.chatId, attempts: r.attempts, reason: r.last_error, updatedAt: r.updated_at };
      });
    },
    drained() {
      if (isDrained()) {
        flush();
        return Promise.resolve();
      }
      return new Promise((resolve) => waiters.push(resolve));
    },
  };
}
