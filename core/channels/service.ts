import { randomUUID } from 'node:crypto';
import type { KernelContext, Service, ServiceFactory } from '../kernel.ts';
import type { BusPort, EventFanout, MethodRegistry } from '../bus/types.ts';
import type { ChannelCapabilities, OutboundMessage } from '../plugin-api.ts';
import { CarapaceError } from '../errors.ts';
import { envSecrets, type SecretsSource } from '../secrets/source.ts';
import { createInbox, type Inbox } from './inbox.ts';
import { createPairingStore, type PairingStore } from './pairing.ts';
import { createRouter, type DispatchFn, type Router, type RouterDeps } from './router.ts';
import { createDeliveryQueue, type DeliveryQueue, type Sender } from './delivery.ts';
import { parseOutbound } from './envelope.ts';
import { prepareOutbound, DEFAULT_CAPABILITIES } from './outbound.ts';
import { registerPairingMethods } from './methods.ts';
import { mayMessage, type MessageTarget } from './message-policy.ts';
import { createHooksService } from './hooks.ts';

// The channels core as kernel services: the router (bus `channel.inbound`), the
// delivery queue (bus `channel.outbound.<channel>`, and `message.send` from the
// message tool), pairing methods and the webhook ingress. Everything outside the
// kernel it needs is injected: the agent's dispatch, the bus, the method registry,
// the event fan-out, the channel senders and capabilities (from the plugin host).

export interface ChannelsDeps {
  dispatch: DispatchFn;
  bus?: BusPort;
  methods?: MethodRegistry;
  events?: EventFanout;
  secrets?: SecretsSource;
  /** A channel's declared capabilities (manifest `provides`); defaults otherwise. */
  capabilities?: (channel: string) => ChannelCapabilities | undefined;
  /** Messages the kernel answers itself (router.ts). */
  command?: RouterDeps['command'];
}

export interface ChannelsService extends Service {
  readonly router: Router;
  readonly queue: DeliveryQueue;
  readonly pairing: PairingStore;
  readonly inbox: Inbox;
  /** The plugin host installs each channel plugin's send() here. */
  setSender(channel: string, sender: Sender): void;
  removeSender(channel: string): void;
  /** Adapt, chunk and durably enqueue one reply (the agent's answers). */
  send(msg: OutboundMessage, opts?: { sessionKey?: string }): { ids: number[] };
  /** The message tool's path: the policy first, then send(). Throws FORBIDDEN naming the reason. */
  sendFromAgent(req: { sessionKey: string; target: MessageTarget; text: string; threadId?: string; idempotencyKey: string }): { ids: number[] };
}

export function createChannelsService(ctx: KernelContext, deps: ChannelsDeps): ChannelsService {
  const inbox = createInbox(ctx.db, ctx.clock);
  const pairing = createPairingStore(ctx.db, { clock: ctx.clock, audit: ctx.audit });
  const queue = createDeliveryQueue({ db: ctx.db, clock: ctx.clock, log: ctx.log.child({ service: 'delivery' }) });
  const log = ctx.log.child({ service: 'channels' });
  const unsubscribe: (() => void)[] = [];

  function send(msg: OutboundMessage, opts?: { sessionKey?: string }): { ids: number[] } {
    const m = parseOutbound(msg);
    const caps = deps.capabilities?.(m.channel) ?? DEFAULT_CAPABILITIES;
    return { ids: queue.enqueueMany(prepareOutbound(m, caps), opts).map((r) => r.id) };
  }

  const router = createRouter({
    config: () => ctx.config.current,
    inbox,
    pairing,
    audit: ctx.audit,
    log,
    dispatch: deps.dispatch,
    reply: (out) => void send(out),
    onPairingRequested: (e) => deps.events?.broadcast('pairing.requested', e, 'operator.pairing'),
    command: deps.command,
  });

  function sendFromAgent(req: { sessionKey: string; target: MessageTarget; text: string; threadId?: string; idempotencyKey: string }): { ids: number[] } {
    const verdict = mayMessage(ctx.config.current, (c, p) => pairing.isApproved(c, p), req.sessionKey, req.target);
    if (!verdict.ok) throw new CarapaceError('FORBIDDEN', verdict.reason);
    const res = send(
      { channel: req.target.channel, account: req.target.account, chatId: req.target.chatId, threadId: req.threadId, text: req.text, idempotencyKey: req.idempotencyKey },
      { sessionKey: req.sessionKey },
    );
    ctx.audit.append({ actor: 'tool:message', action: 'message.send', target: `${req.target.channel}:${req.target.chatId}`, sessionKey: req.sessionKey, data: { chunks: res.ids.length } });
    return res;
  }

  if (deps.methods) {
    registerPairingMethods(deps.methods, pairing, {
      onApproved: (r) => {
        // Back to the chat the code was asked from: on Discord and Slack a DM channel id is not the user id.
        const origin = pairing.originOf(r.channel, r.senderId) ?? { chatId: r.senderId };
        send({ channel: r.channel, ...origin, text: 'You are paired now: go ahead.', idempotencyKey: `paired:${r.channel}:${r.senderId}:${r.code}` });
      },
    });
  }

  function subscribeBus(bus: BusPort): void {
    unsubscribe.push(
      bus.subscribe('channel.inbound', async (m) => {
        try {
          await router.receive(m.payload, m.from);
        } catch (err) {
          log.warn('inbound message refused', { from: m.from, error: err instanceof CarapaceError ? err.message : String(err) });
        }
      }),
      bus.subscribe('channel.outbound.*', (m) => {
        try {
          const out = parseOutbound(m.payload);
          if (m.topic !== `channel.outbound.${out.channel}`) throw new CarapaceError('INVALID_REQUEST', `topic ${m.topic} does not match channel ${out.channel}`);
          send(out, { sessionKey: m.sessionKey });
        } catch (err) {
          log.warn('outbound message refused', { from: m.from, topic: m.topic, error: err instanceof CarapaceError ? err.message : String(err) });
        }
      }),
      bus.subscribe('message.send', (m) => {
        const p = (m.payload ?? {}) as { requestId?: unknown; target?: MessageTarget; text?: unknown; threadId?: string; idempotencyKey?: unknown };
        const requestId = typeof p.requestId === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(p.requestId) ? p.requestId : randomUUID();
        // Only the session on the bus message counts: the plugin host lets a plugin put there only
        // a session it is serving a tool call in (operator devices, the owner's, may name any).
        const sessionKey = m.sessionKey ?? '';
        let result: Record<string, unknown>;
        try {
          if (!sessionKey) throw new CarapaceError('FORBIDDEN', 'message.send must come from a tool call in a session');
          if (typeof p.text !== 'string' || typeof p.idempotencyKey !== 'string' || !p.target) throw new CarapaceError('INVALID_REQUEST', 'message.send needs target, text and idempotencyKey');
          const { ids } = sendFromAgent({ sessionKey, target: p.target, text: p.text, threadId: p.threadId, idempotencyKey: `${m.from}:${p.idempotencyKey}` });
          result = { ok: true, queued: ids.length };
        } catch (err) {
          result = { ok: false, error: err instanceof CarapaceError ? err.toWire() : { code: 'INTERNAL', message: 'internal error' } };
        }
        try {
          bus.publish(`message.result.${requestId}`, result, { sessionKey });
        } catch (err) {
          log.warn('cannot answer message.send', { err });
        }
      }),
    );
  }

  return {
    name: 'channels',
    router,
    queue,
    pairing,
    inbox,
    setSender: (c, s) => queue.setSender(c, s),
    removeSender: (c) => queue.removeSender(c),
    send,
    sendFromAgent,
    async start() {
      queue.start();
      if (deps.bus) subscribeBus(deps.bus);
      const recovered = await router.recover();
      if (recovered > 0) log.info('handed over inbound messages accepted before a restart', { count: recovered });
      inbox.prune(ctx.clock.now() - 30 * 24 * 60 * 60 * 1000);
    },
    async stop() {
      for (const u of unsubscribe.splice(0)) u();
      await queue.stop();
    },
    status() {
      return {
        queue: queue.counts(),
        inbound: inbox.counts(),
        pairingPending: pairing.list().map((r) => ({ channel: r.channel, code: r.code, expiresAt: r.expiresAt })),
      };
    },
  };
}

/** The factories to add to core/services.ts once the agent (dispatch), bus and plugin host are wired. */
export function channelServiceFactories(makeDeps: (ctx: KernelContext) => ChannelsDeps): ServiceFactory[] {
  const made = new WeakMap<KernelContext, ChannelsDeps>();
  const deps = (ctx: KernelContext): ChannelsDeps => {
    if (!made.has(ctx)) made.set(ctx, makeDeps(ctx));
    return made.get(ctx)!;
  };
  return [
    (ctx) => createChannelsService(ctx, deps(ctx)),
    (ctx) => {
      const d = deps(ctx);
      return createHooksService({
        config: () => ctx.config.current,
        db: ctx.db,
        clock: ctx.clock,
        log: ctx.log.child({ service: 'hooks' }),
        audit: ctx.audit,
        secrets: d.secrets ?? envSecrets(),
        dispatch: d.dispatch,
      });
    },
  ];
}
