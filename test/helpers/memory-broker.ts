// A minimal in-memory Broker for plugin-host tests (the real one lives in core/bus/).
// Same contract: ACL patterns checked on publish and subscribe, FORBIDDEN otherwise.
import { randomUUID } from 'node:crypto';
import { CarapaceError } from '../../core/errors.ts';
import type { Broker, BusMessage, BusPort, MessageHandler, TopicAcl } from '../../core/bus/types.ts';
import { topicMatches, patternCovers } from '../../core/plugins/capabilities.ts';

export class MemoryBroker implements Broker {
  readonly subs = new Set<{ pattern: string; handler: MessageHandler }>();
  readonly published: BusMessage[] = [];

  port(identity: string, acl: TopicAcl): BusPort {
    const mine = new Set<{ pattern: string; handler: MessageHandler }>();
    return {
      identity,
      publish: (topic, payload, opts = {}) => {
        if (!acl.publish.some((p) => topicMatches(p, topic))) throw new CarapaceError('FORBIDDEN', `${identity} may not publish on ${topic}`);
        const msg: BusMessage = { id: randomUUID(), topic, payload, from: identity, ts: Date.now(), sessionKey: opts.sessionKey, traceId: opts.traceId };
        this.published.push(msg);
        for (const s of this.subs) if (topicMatches(s.pattern, topic)) void s.handler(msg);
        return msg;
      },
      subscribe: (pattern, handler) => {
        if (!acl.subscribe.some((p) => patternCovers(p, pattern))) throw new CarapaceError('FORBIDDEN', `${identity} may not subscribe to ${pattern}`);
        const s = { pattern, handler };
        this.subs.add(s);
        mine.add(s);
        return () => {
          this.subs.delete(s);
          mine.delete(s);
        };
      },
      close: () => {
        for (const s of mine) this.subs.delete(s);
      },
    };
  }
}
