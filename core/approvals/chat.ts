// Tool approvals in the owner's chat: the request goes to every chat identity
// listed in `approvals.chat`, and "/approve ID" or "/deny ID" sent back from one of
// them decides it. Only a listed sender on a direct chat of a channel whose sender
// ids the platform vouches for (manifest `authenticatedSender`: Telegram, Slack,
// Discord; not an IRC nick or an e-mail From header) can; everyone else's
// "/approve" is an ordinary message. An input too long to show whole is decided in
// the Control UI or with `carapace approvals`: the owner approves what they saw.
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

// The slash is optional: Slack's client takes any message starting with one for a
// slash command of its own and never sends it.
const COMMAND = /^\s*\/?(approve|deny)\s+(apr_[0-9a-f]{12})\s*$/i;
const MAX_INPUT_SHOWN = 1500;
// Characters that reorder or hide text: shown escaped, so the owner reads what would run.
const INVISIBLE = /[\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/g;

type Approver = Config['approvals']['chat'][number];
/** Whether a channel's sender ids are vouched for by its platform (its manifest says so). */
export type SenderAuthenticated = (channel: string) => boolean;

function approverOf(config: Config, msg: InboundMessage, authenticated: SenderAuthenticated): Approver | undefined {
  if (msg.chatType !== 'direct' || !authenticated(msg.channel)) return undefined;
  return config.approvals.chat.find((a) => a.channel === msg.channel && a.peer === msg.sender.id && (a.account === undefined || a.account === msg.account));
}

function shownInput(input: unknown): string | null {
  const text = JSON.stringify(input ?? null).replace(INVISIBLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return text.length <= MAX_INPUT_SHOWN ? text : null;
}

/** The message each approver gets. */
export function askText(ask: ApprovalAsk, now: number): string {
  const input = shownInput(ask.input);
  const minutes = Math.max(1, Math.round((ask.expiresAt - now) / 60_000));
  return [
    `Approval needed: agent ${ask.agentId} wants to run ${ask.tool}`,
    ...(input !== null
      ? [input, `Reply approve ${ask.id} or deny ${ask.id} (expires in ${minutes} min).`]
      : [`Its input is too long to show here: decide in the Control UI or with carapace approvals approve|deny ${ask.id} (expires in ${minutes} min).`]),
  ].join('\n');
}

/** One outbound message per listed approver on a channel that authenticates senders. */
export function askMessages(config: Config, ask: ApprovalAsk, now: number, authenticated: SenderAuthenticated): OutboundMessage[] {
  return config.approvals.chat.filter((a) => authenticated(a.channel)).map((a) => ({
    channel: a.channel,
    chatId: a.chatId ?? a.peer,
    ...(a.account !== undefined ? { account: a.account } : {}),
    text: askText(ask, now),
    idempotencyKey: `approval:${ask.id}:${a.channel}:${a.peer}`,
  }));
}

/** The router's command hook: the answer to an approver's /approve or /deny, or null. */
export function approvalCommand(config: () => Config, approvals: () => Approvals, authenticated: SenderAuthenticated): (msg: InboundMessage) => string | null {
  return (msg) => {
    const m = COMMAND.exec(msg.text);
    if (!m || !approverOf(config(), msg, authenticated)) return null;
    const decision = m[1].toLowerCase() === 'approve' ? 'approved' : 'denied';
    const pending = approvals().get(m[2]);
    if (decision === 'approved' && pending && shownInput(pending.input) === null) {
      return `Nothing decided: the input of ${m[2]} is too long to show in a chat; decide in the Control UI or with carapace approvals.`;
    }
    try {
      const rec = approvals().resolve(m[2], decision, `channel:${msg.channel}:${msg.sender.id}`);
      return `${decision === 'approved' ? 'Approved' : 'Denied'}: ${rec.tool} (${rec.id}).`;
    } catch (err) {
      return `Nothing decided: ${err instanceof CarapaceError ? err.message : 'internal error'}.`;
    }
  };
}
