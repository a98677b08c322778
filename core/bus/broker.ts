// The one message broker (architecture.md "bus"). In-process ports (kernel
// services, the plugin host on behalf of each plugin) and WebSocket devices get
// the same kind of port and the same ACL check; the transport is not the broker's business.
import { randomUUID } from 'node:crypto';
import { CarapaceError } from '../errors.ts';
import type { Broker, BusMessage, BusPort, MessageHandler, PublishOptions, TopicAcl } from './types.ts';
import type { Logger } from '../log/logger.ts';
import type { Clock } from '../clock.ts';
import { matches, matchSegments } from './topics.ts';

const SEGMENT = /^[A-Za-z0-9_:@-]{1,64}$/;
const MAX_TOPIC = 256;

const TOPIC = /^[A-Za-z0-9_:@-]{1,64}(?:\.[A-Za-z0-9_:@-]{1,64})*$/;

/** A concrete topic: dot-separated segments, no wildcards. */
export function isTopic(topic: unknown): topic is string {
  if (typeof topic !== 'string' || topic.length === 0 || topic.length > MAX_TOPIC) return false;
  return TOPIC.test(topic);
}

/** A subscription pattern: segments, `*` for exactly one, a final `>` for one or more. */
export function isPattern(pattern: unknown): pattern is string {
  if (typeof pattern !== 'string' || pattern.length === 0 || pattern.length > MAX_TOPIC) return false;
  const segs = pattern.split('.');
  return segs.every((s, i) => s === '*' || (s === '>' && i === segs.length - 1) || SEGMENT.test(s));
}

export { matches };

/** Is every topic `inner` can match also matched by `outer`? (A subscription must stay inside its ACL.) */
export function covers(outer: string, inner: string): boolean {
  const o = outer.split('.');
  const n = inner.split('.');
  for (let i = 0; i < o.length; i++) {
    if (o[i] === '>') return n.length > i;
    if (i >= n.length) return false;
    if (n[i] === '>') return false; // inner reaches further than a single-segment outer
    if (o[i] === '*') continue;
    if (o[i] !== n[i]) return false;
  }
  return o.length === n.length;
}

export function mayPublish(acl: TopicAcl, topic: string): boolean {
  return acl.publish.some((p) => matches(p, topic));
}

export function maySubscribe(acl: TopicAcl, pattern: string): boolean {
  return acl.subscribe.some((p) => covers(p, pattern));
}

interface Subscription {
  pattern: string;
  /** The pattern's segments, split once (wildcard patterns only). */
  segments: string[] | null;
  identity: string;
  handler: MessageHandler;
  queue: BusMessage[];
  draining: boolean;
  dropped: number;
  closed: boolean;
}

export interface BrokerOptions {
  log: Logger;
  clock: Clock;
  /**
   * Messages waiting per subscription. When full, further messages for that
   * subscriber are dropped and counted (publishers are never blocked by a slow
   * consumer); the first drop of a burst is logged. Durable delivery is the
   * delivery queue's job, not the broker's.
   */
  queueLimit?: number;
  /** Idempotency keys remembered per publisher (oldest forgotten first). */
  idempotencyLimit?: number;
  idempotencyTtlMs?: number;
}

export interface BrokerStats {
  ports: number;
  subscriptions: number;
  published: number;
  delivered: number;
  dropped: number;
}

export interface LocalBroker extends Broker {
  stats(): BrokerStats;
  close(): void;
}

export function createBroker(opts: BrokerOptions): LocalBroker {
  const queueLimit = opts.queueLimit ?? 1024;
  const idemLimit = opts.idempotencyLimit ?? 10_000;
  const idemTtl = opts.idempotencyTtlMs ?? 10 * 60_000;
  const subs = new Set<Subscription>();
  // Delivery looks subscriptions up instead of matching every one against every
  // topic: patterns without wildcards by exact topic, the rest pre-split.
  const exact = new Map<string, Set<Subscription>>();
  const wild = new Set<Subscription>();
  // publisher identity → key → first message (Map keeps insertion order: oldest first)
  const seen = new Map<string, Map<string, BusMessage>>();
  const ports = new Set<BusPort>();
  let published = 0;
  let delivered = 0;
  let dropped = 0;

  function drain(sub: Subscription): void {
    if (sub.draining) return;
    sub.draining = true;
    queueMicrotask(() => void run(sub));
  }

  // Serial per subscription: a handler's promise is awaited before the next
  // message, so one subscriber sees one topic's messages in publish order.
  async function run(sub: Subscription): Promise<void> {
    while (sub.queue.length > 0 && !sub.closed) {
      const msg = sub.queue.shift()!;
      try {
        const r = sub.handler(msg);
        if (r && typeof (r as Promise<void>).then === 'function') await r;
        delivered++;
      } catch (err) {
        opts.log.error('bus subscriber failed', { subscriber: sub.identity, topic: msg.topic, err });
      }
    }
    sub.draining = false;
    if (sub.queue.length > 0 && !sub.closed) drain(sub);
  }

  function recall(identity: string, key: string): BusMessage | undefined {
    const m = seen.get(identity)?.get(key);
    if (m && opts.clock.now() - m.ts > idemTtl) {
      seen.get(identity)!.delete(key);
      return undefined;
    }
    return m;
  }

  function remember(identity: string, key: string, msg: BusMessage): void {
    let m = seen.get(identity);
    if (!m) seen.set(identity, (m = new Map()));
    m.set(key, msg);
    if (m.size > idemLimit) m.delete(m.keys().next().value!);
  }

  function index(sub: Subscription): void {
    subs.add(sub);
    if (sub.segments) wild.add(sub);
    else {
      let set = exact.get(sub.pattern);
      if (!set) exact.set(sub.pattern, (set = new Set()));
      set.add(sub);
    }
  }

  function unindex(sub: Subscription): void {
    subs.delete(sub);
    if (sub.segments) wild.delete(sub);
    else {
      const set = exact.get(sub.pattern);
      if (set && set.delete(sub) && set.size === 0) exact.delete(sub.pattern);
    }
  }

  function deliver(msg: BusMessage, segments: readonly string[]): void {
    const direct = exact.get(msg.topic);
    if (direct) for (const sub of direct) enqueue(sub, msg);
    for (const sub of wild) if (matchSegments(sub.segments!, segments)) enqueue(sub, msg);
  }

  function enqueue(sub: Subscription, msg: BusMessage): void {
    if (sub.queue.length >= queueLimit) {
      if (sub.dropped++ === 0) opts.log.warn('bus subscriber is not keeping up; dropping messages', { subscriber: sub.identity, pattern: sub.pattern, queueLimit });
      dropped++;
      return;
    }
    if (sub.dropped > 0 && sub.queue.length === 0) sub.dropped = 0; // caught up: log the next burst again
    sub.queue.push(msg);
    drain(sub);
  }

  return {
    port(identity: string, acl: TopicAcl): BusPort {
      const own = new Set<Subscription>();
      let closed = false;
      // Both callers build a fresh ACL per port and never change it: split its patterns once.
      const publishable = acl.publish.map((p) => p.split('.'));
      const port: BusPort = {
        identity,
        publish(topic, payload, popts: PublishOptions = {}) {
          if (closed) throw new CarapaceError('UNAVAILABLE', 'bus port is closed');
          if (!isTopic(topic)) throw new CarapaceError('INVALID_REQUEST', `not a topic: ${String(topic).slice(0, 80)}`, { topic });
          const segments = topic.split('.');
          if (!publishable.some((p) => matchSegments(p, segments))) throw new CarapaceError('FORBIDDEN', `${identity} may not publish to ${topic}`, { topic });
          if (popts.idempotencyKey !== undefined) {
            const first = recall(identity, popts.idempotencyKey);
            if (first) return first;
          }
          const msg: BusMessage = { id: randomUUID(), topic, payload, from: identity, ts: opts.clock.now() };
          if (popts.sessionKey !== undefined) msg.sessionKey = popts.sessionKey;
          if (popts.traceId !== undefined) msg.traceId = popts.traceId;
          if (popts.idempotencyKey !== undefined) remember(identity, popts.idempotencyKey, msg);
          published++;
          deliver(msg, segments);
          return msg;
        },
        subscribe(pattern, handler) {
          if (closed) throw new CarapaceError('UNAVAILABLE', 'bus port is closed');
          if (!isPattern(pattern)) throw new CarapaceError('INVALID_REQUEST', `not a topic pattern: ${String(pattern).slice(0, 80)}`, { pattern });
          if (!maySubscribe(acl, pattern)) throw new CarapaceError('FORBIDDEN', `${identity} may not subscribe to ${pattern}`, { pattern });
          const wildcard = pattern.includes('*') || pattern.includes('>');
          const sub: Subscription = { pattern, segments: wildcard ? pattern.split('.') : null, identity, handler, queue: [], draining: false, dropped: 0, closed: false };
          index(sub);
          own.add(sub);
          return () => {
            sub.closed = true;
            sub.queue.length = 0;
            unindex(sub);
            own.delete(sub);
          };
        },
        close() {
          closed = true;
          for (const sub of own) {
            sub.closed = true;
            sub.queue.length = 0;
            unindex(sub);
          }
          own.clear();
          ports.delete(port);
        },
      };
      ports.add(port);
      return port;
    },
    stats: () => ({ ports: ports.size, subscriptions: subs.size, published, delivered, dropped }),
    close() {
      for (const p of [...ports]) p.close();
      seen.clear();
    },
  };
}
