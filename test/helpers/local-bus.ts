import { randomUUID } from 'node:crypto';
import type { BusMessage, BusPort, MessageHandler } from '../../core/bus/types.ts';
import { matches } from '../../core/bus/topics.ts';

// An in-process stand-in for the broker (core/bus/, built on another branch),
// implementing the same BusPort contract minus ACLs: enough to drive the channels
// service's subscriptions the way the real broker will.


export function localBus(): { port(identity: string): BusPort; published: BusMessage[] } {
  const subs = new Set<{ pattern: string; handler: MessageHandler }>();
  const published: BusMessage[] = [];
  return {
    published,
    port(identity) {
      return {
        identity,
        publish(topic, payload, opts) {
          const msg: BusMessage = { id: randomUUID(), topic, payload, from: identity, ts: Date.now(), sessionKey: opts?.sessionKey, traceId: opts?.traceId };
          published.push(msg);
          for (const s of [...subs]) if (matches(s.pattern, topic)) void s.handler(msg);
          return msg;
        },
        subscribe(pattern, handler) {
          const s = { pattern, handler };
          subs.add(s);
          return () => void subs.delete(s);
        },
        close() {},
      };
    },
  };
}
