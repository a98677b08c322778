import type { Db } from '../store/db.ts';
import type { Clock } from '../clock.ts';
import type { InboundMessage } from '../plugin-api.ts';

// The inbound ledger: every message a channel delivers is written here before it
// is acknowledged, keyed by (channel, account, platform message id) so that a
// redelivered webhook or a re-polled update is recognised and never runs the
// agent twice. This module is the only writer of `channel_inbound`.
//
// States: received (persisted, not yet decided) → routed (allowed; agent and
// session chosen) → dispatched. Or refused / pairing, where the text is dropped:
// a stranger's words are not kept.

export type InboundState = 'received' | 'routed' | 'dispatched' | 'refused' | 'pairing' | 'command';

export interface InboundRow {
  id: number;
  channel: string;
  account: string;
  platformMessageId: string;
  state: InboundState;
  reason: string | null;
  agentId: string | null;
  sessionKey: string | null;
  message: InboundMessage | null;
}

export interface Inbox {
  /** Persist a new message; `duplicate` when this platform id was seen before. */
  accept(msg: InboundMessage): { duplicate: false; id: number } | { duplicate: true; row: InboundRow };
  routed(id: number, agentId: string, sessionKey: string): void;
  dispatched(id: number): void;
  refused(id: number, state: 'refused' | 'pairing' | 'command', reason: string): void;
  /** Messages accepted but not yet handed to an agent (a crash in between): oldest first. */
  unfinished(): InboundRow[];
  counts(): Record<string, number>;
  /** Forget de-duplication keys older than `before` (ms epoch). */
  prune(before: number): number;
}

interface Row {
  id: number;
  channel: string;
  account: string;
  platform_message_id: string;
  state: InboundState;
  reason: string | null;
  agent_id: string | null;
  session_key: string | null;
  envelope: string | null;
}

const toRow = (r: Row): InboundRow => ({
  id: r.id,
  channel: r.channel,
  account: r.account,
  platformMessageId: r.platform_message_id,
  state: r.state,
  reason: r.reason,
  agentId: r.agent_id,
  sessionKey: r.session_key,
  message: r.envelope === null ? null : (JSON.parse(r.envelope) as InboundMessage),
});

export function createInbox(db: Db, clock: Clock): Inbox {
  const insert = db.prepare(
    "INSERT INTO channel_inbound (channel, account, platform_message_id, received_at, state, envelope) VALUES (?, ?, ?, ?, 'received', ?) ON CONFLICT DO NOTHING",
  );
  const find = db.prepare('SELECT * FROM channel_inbound WHERE channel = ? AND account = ? AND platform_message_id = ?');
  const setRouted = db.prepare("UPDATE channel_inbound SET state = 'routed', agent_id = ?, session_key = ? WHERE id = ?");
  const setDispatched = db.prepare("UPDATE channel_inbound SET state = 'dispatched' WHERE id = ?");
  const setRefused = db.prepare('UPDATE channel_inbound SET state = ?, reason = ?, envelope = NULL WHERE id = ?');
  const open = db.prepare("SELECT * FROM channel_inbound WHERE state IN ('received','routed') ORDER BY id");
  const counts = db.prepare('SELECT state, COUNT(*) AS n FROM channel_inbound GROUP BY state');
  const prune = db.prepare("DELETE FROM channel_inbound WHERE received_at < ? AND state NOT IN ('received','routed')");

  return {
    accept(msg) {
      const account = msg.account ?? 'default';
      const res = insert.run(msg.channel, account, msg.platformMessageId, clock.now(), JSON.stringify(msg));
      if (res.changes === 1) return { duplicate: false, id: Number(res.lastInsertRowid) };
      return { duplicate: true, row: toRow(find.get(msg.channel, account, msg.platformMessageId) as Row) };
    },
    routed: (id, agentId, sessionKey) => void setRouted.run(agentId, sessionKey, id),
    dispatched: (id) => void setDispatched.run(id),
    refused: (id, state, reason) => void setRefused.run(state, reason, id),
    unfinished: () => (open.all() as Row[]).map(toRow),
    counts: () => Object.fromEntries((counts.all() as { state: string; n: number }[]).map((r) => [r.state, r.n])),
    prune: (before) => prune.run(before).changes,
  };
}
