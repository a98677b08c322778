// Tool approvals in the owner's chat: the request goes to every chat identity
// listed in `approvals.chat`, and "/approve ID" or "/deny ID" sent back from one of
// them decides it. Only a listed sender on a direct chat can: the channel vouches
// for the sender id (a Telegram user id, a Slack member id), and everyone else's
// "/approve" is an ordinary message.
import type { Config } from '../config/config.ts';
import type { InboundMessage, OutboundMessage } from '../plugin-api.ts';
import type { Approvals } from './approvals.ts';
import { CarapaceError } from '../errors.ts';

export interface ApprovalAsk {
  id: string;
  tool: string;
  input: unknown;
  agentId: string;
  expiresAt: number;
}

const COMMAND = /^\s*\/(approve|deny)\s+(apr_[0-9a-f]{12})\s*$/i;
const MAX_INPUT_SHOWN = 600;

type Approver = Config['approvals']['chat'][number];

function approverOf(config: Config, msg: InboundMessage): Approver | undefined {
  if (msg.chatType !== 'direct') return undefined;
  return config.approvals.chat.find((a) => a.channel === msg.channel && a.peer === msg.sender.id && (a.account === undefined || a.account === msg.account));
}

/** The message each approver gets. */
export function askText(ask: ApprovalAsk, now: number): string {
  const input = JSON.stringify(ask.input ?? null);
  const minutes = Math.max(1, Math.round((ask.expiresAt - now) / 60_000));
  return [
    `Approval needed: agent ${ask.agentId} wants to run ${ask.tool}`,
    input.length > MAX_INPUT_SHOWN ? `${input.slice(0, MAX_INPUT_SHOWN)}…` : input,
    `Reply /approve ${ask.id} or /deny ${ask.id} (expires in ${minutes} min).`,
  ].join('\n');
}

/** One outbound message per listed approver. */
export function askMessages(config: Config, ask: ApprovalAsk, now: number): OutboundMessage[] {
  return config.approvals.chat.map((a) => ({
    channel: a.channel,
    chatId: a.chatId ?? a.peer,
    ...(a.account !== undefined ? { account: a.account } : {}),
    text: askText(ask, now),
    idempotencyKey: `approval:${ask.id}:${a.channel}:${a.peer}`,
  }));
}

/** The router's command hook: the answer to an approver's /approve or /deny, or null. */
export function approvalCommand(config: () => Config, approvals: () => Approvals): (msg: InboundMessage) => string | null {
  return (msg) => {
    const m = COMMAND.exec(msg.text);
    if (!m || !approverOf(config(), msg)) return null;
    const decision = m[1].toLowerCase() === 'approve' ? 'approved' : 'denied';
    try {
      const rec = approvals().resolve(m[2], decision, `channel:${msg.channel}:${msg.sender.id}`);
      return `${decision === 'approved' ? 'Approved' : 'Denied'}: ${rec.tool} (${rec.id}).`;
    } catch (err) {
      return `Nothing decided: ${err instanceof CarapaceError ? err.message : 'internal error'}.`;
    }
  };
}
