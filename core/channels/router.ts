import type { Config } from '../config/config.ts';
import type { Logger } from '../log/logger.ts';
import type { AuditLog } from '../audit.ts';
import type { InboundMessage } from '../plugin-api.ts';
import { CarapaceError } from '../errors.ts';
import { sessionKeyFor } from '../sessions/session-key.ts';
import { parseInbound } from './envelope.ts';
import { decideAccess } from './access.ts';
import { resolveAgent } from './bindings.ts';
import type { Inbox } from './inbox.ts';
import type { PairingStore } from './pairing.ts';

// The router: one inbound envelope in, at most one agent dispatch out. Order per
// message: validate → persist (de-duplicate) → access control → binding →
// session key → dispatch. A message is acknowledged (receive() resolves) only
// once it is on disk, so nothing accepted is silently dropped.

export interface Dispatch {
  agentId: string;
  sessionKey: string;
  message: InboundMessage;
  /** The inbound ledger row (channel messages): a consumer that wants exactly-once can remember it. */
  inboundId?: number;
  /** Set by webhook ingress: the run id already promised to the caller. */
  runId?: string;
  /** Where the agent's reply goes when it is not the origin chat, e.g. "telegram:123456" (hooks.<name>.deliver). */
  deliver?: string | null;
  /** `wake`: nudge the agent's main session instead of starting a turn in its own (hooks.<name>.action). */
  action?: 'agent' | 'wake';
}

/** Hands a message to the agent side; resolves once it is accepted there (queued), not when the turn ends. */
export type DispatchFn = (d: Dispatch) => void | Promise<void>;

/** Enqueue a reply on the durable delivery queue (used for the pairing code). */
export type ReplyFn = (out: { channel: string; account?: string; chatId: string; threadId?: string; text: string; idempotencyKey: string }) => void;

export interface PairingRequestedEvent {
  channel: string;
  senderId: string;
  senderName: string | null;
  code: string;
  expiresAt: number;
}

export interface RouterDeps {
  config: () => Config;
  inbox: Inbox;
  pairing: PairingStore;
  audit: AuditLog;
  log: Logger;
  dispatch: DispatchFn;
  reply: ReplyFn;
  onPairingRequested?: (event: PairingRequestedEvent) => void;
  /**
   * A message the kernel answers itself (the owner's /approve in a chat): returns
   * the answer, and the message goes no further. Null: route it as usual.
   */
  command?: (msg: InboundMessage) => string | null;
}

export type RouteResult =
  | { outcome: 'dispatched'; inboundId: number; agentId: string; sessionKey: string }
  /** Persisted and routed, but the dispatch failed: recover() hands it over later. */
  | { outcome: 'queued'; inboundId: number; agentId: string; sessionKey: string }
  | { outcome: 'duplicate'; inboundId: number }
  | { outcome: 'refused'; inboundId: number; reason: string }
  | { outcome: 'pairing'; inboundId: number; reason: 'code-sent' | 'already-requested' | 'pending-full' }
  | { outcome: 'command'; inboundId: number };

export interface Router {
  /**
   * Route one envelope a channel published. `publisher` is the bus identity that
   * published it: a plugin may only speak for its own channel.
   */
  receive(raw: unknown, publisher?: string): Promise<RouteResult>;
  /** After a restart: decide and dispatch what was accepted but never handed over. */
  recover(): Promise<number>;
}

function pairingText(channel: string, code: string): string {
  return [
    "Hi! I don't know you yet, so I can't answer.",
    `Your pairing code: ${code}`,
    `Ask my owner to approve it with: carapace pairing approve ${channel} ${code}`,
    'The code expires in an hour.',
  ].join('\n');
}

export function createRouter(deps: RouterDeps): Router {
  async function route(id: number, msg: InboundMessage): Promise<RouteResult> {
    const answer = deps.command?.(msg) ?? null;
    if (answer !== null) {
      deps.inbox.refused(id, 'command', 'answered by the kernel');
      deps.reply({
        channel: msg.channel,
        account: msg.account,
        chatId: msg.chatId,
        ...(msg.threadId !== undefined ? { threadId: msg.threadId } : {}),
        text: answer,
        idempotencyKey: `command:${msg.channel}:${msg.account ?? 'default'}:${msg.platformMessageId}`,
      });
      return { outcome: 'command', inboundId: id };
    }
    const config = deps.config();
    const decision = decideAccess(config.channels[msg.channel], msg, () => deps.pairing.isApproved(msg.channel, msg.sender.id));
    if (decision.verdict === 'refuse') {
      deps.inbox.refused(id, 'refused', decision.reason);
      deps.log.info('inbound message refused', { channel: msg.channel, reason: decision.reason, chatType: msg.chatType });
      return { outcome: 'refused', inboundId: id, reason: decision.reason };
    }
    if (decision.verdict === 'pair') return pair(id, msg);

    const peer = msg.chatType === 'direct' ? msg.sender.id : msg.chatId;
    const agentId = resolveAgent(config, { channel: msg.channel, account: msg.account, chatType: msg.chatType, chatId: peer });
    const sessionKey = sessionKeyFor(
      { agentId, channel: msg.channel, account: msg.account, chatType: msg.chatType, chatId: peer, threadId: msg.threadId },
      config.session.dmScope,
    );
    deps.inbox.routed(id, agentId, sessionKey);
    return hand(id, msg, agentId, sessionKey);
  }

  async function hand(id: number, msg: InboundMessage, agentId: string, sessionKey: string): Promise<RouteResult> {
    try {
      await deps.dispatch({ agentId, sessionKey, message: msg, inboundId: id });
    } catch (err) {
      deps.log.warn('dispatch failed; the message stays queued for recovery', { inboundId: id, sessionKey, err });
      return { outcome: 'queued', inboundId: id, agentId, sessionKey };
    }
    deps.inbox.dispatched(id);
    return { outcome: 'dispatched', inboundId: id, agentId, sessionKey };
  }

  function pair(id: number, msg: InboundMessage): RouteResult {
    const origin = { chatId: msg.chatId, ...(msg.account !== undefined ? { account: msg.account } : {}), ...(msg.threadId !== undefined ? { threadId: msg.threadId } : {}) };
    const outcome = deps.pairing.request(msg.channel, { id: msg.sender.id, name: msg.sender.name ?? msg.sender.username }, origin);
    if (outcome.kind === 'issued') {
      deps.inbox.refused(id, 'pairing', 'code-sent');
      deps.audit.append({
        actor: `channel:${msg.channel}`,
        action: 'pairing.request',
        target: `${msg.channel}:${msg.sender.id}`,
        data: { channel: msg.channel, senderId: msg.sender.id, code: outcome.code, expiresAt: outcome.expiresAt },
      });
      deps.reply({
        channel: msg.channel,
        account: msg.account,
        chatId: msg.chatId,
        ...(msg.threadId !== undefined ? { threadId: msg.threadId } : {}),
        text: pairingText(msg.channel, outcome.code),
        idempotencyKey: `pairing:${msg.channel}:${msg.account ?? 'default'}:${msg.platformMessageId}`,
      });
      deps.onPairingRequested?.({
        channel: msg.channel,
        senderId: msg.sender.id,
        senderName: msg.sender.name ?? msg.sender.username ?? null,
        code: outcome.code,
        expiresAt: outcome.expiresAt,
      });
      return { outcome: 'pairing', inboundId: id, reason: 'code-sent' };
    }
    const reason = outcome.kind === 'full' ? 'pending-full' : 'already-requested';
    deps.inbox.refused(id, 'pairing', reason);
    if (outcome.kind === 'full') deps.log.warn('pairing request dropped: too many pending on this channel', { channel: msg.channel });
    return { outcome: 'pairing', inboundId: id, reason };
  }

  return {
    async receive(raw, publisher) {
      const msg = parseInbound(raw);
      if (publisher !== undefined && publisher.startsWith('plugin:') && publisher !== `plugin:${msg.channel}`) {
        throw new CarapaceError('FORBIDDEN', `${publisher} may not publish messages for channel ${msg.channel}`);
      }
      const accepted = deps.inbox.accept(msg);
      if (accepted.duplicate) return { outcome: 'duplicate', inboundId: accepted.row.id };
      return route(accepted.id, msg);
    },
    async recover() {
      let n = 0;
      for (const row of deps.inbox.unfinished()) {
        if (row.message === null) continue;
        n++;
        if (row.state === 'routed' && row.agentId && row.sessionKey) await hand(row.id, row.message, row.agentId, row.sessionKey);
        else await route(row.id, row.message);
      }
      return n;
    },
  };
}
