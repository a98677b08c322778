import { randomBytes } from 'node:crypto';
import type { Db } from '../store/db.ts';
import type { AuditLog } from '../audit.ts';
import type { Clock } from '../clock.ts';
import { CarapaceError } from '../errors.ts';

// Chat-sender pairing (dmPolicy "pairing"): an unknown sender gets a short code
// once; the owner approves it with `carapace pairing approve <channel> <code>`.
// This module is the only writer of `channel_pairing` and `channel_allow`.
// Writes are IMMEDIATE transactions: the gateway and an offline CLI may share the file.

export const PAIRING_TTL_MS = 60 * 60 * 1000;
export const MAX_PENDING_PER_CHANNEL = 3;

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** 8 Crockford base32 characters (40 bits), shown as XXXX-XXXX. */
export function newPairingCode(): string {
  const bytes = randomBytes(5);
  let bits = 0n;
  for (const b of bytes) bits = (bits << 8n) | BigInt(b);
  let out = '';
  for (let i = 7; i >= 0; i--) out += CROCKFORD[Number((bits >> BigInt(i * 5)) & 31n)];
  return out;
}

/** What a person may type: any case, with or without the dash, Crockford's look-alikes folded. */
export function normalizeCode(input: string): string {
  return input.toUpperCase().replace(/[\s-]/g, '').replace(/[IL]/g, '1').replace(/O/g, '0');
}

export function formatCode(code: string): string {
  return `${code.slice(0, 4)}-${code.slice(4)}`;
}

export interface PairingRequest {
  channel: string;
  senderId: string;
  senderName: string | null;
  code: string;
  createdAt: number;
  expiresAt: number;
}

export type PairingOutcome =
  | { kind: 'issued'; code: string; expiresAt: number }
  /** A code was already sent within the hour (or the sender was rejected): say nothing again. */
  | { kind: 'already-requested' }
  /** MAX_PENDING_PER_CHANNEL requests are waiting: the sender gets nothing until one resolves or expires. */
  | { kind: 'full' };

/** The chat a pairing code was asked from: where the confirmation goes. */
export interface PairingOrigin {
  chatId: string;
  account?: string;
  threadId?: string;
}

export interface PairingStore {
  isApproved(channel: string, senderId: string): boolean;
  request(channel: string, sender: { id: string; name?: string }, origin?: PairingOrigin): PairingOutcome;
  /** The chat the sender's latest request came from, if it was recorded. */
  originOf(channel: string, senderId: string): PairingOrigin | undefined;
  list(channel?: string): PairingRequest[];
  approve(channel: string, code: string, actor: string): PairingRequest;
  reject(channel: string, code: string, actor: string): PairingRequest;
}

interface Row {
  id: number;
  channel: string;
  sender_id: string;
  sender_name: string | null;
  code: string;
  created_at: number;
  expires_at: number;
}

const toRequest = (r: Row): PairingRequest => ({
  channel: r.channel,
  senderId: r.sender_id,
  senderName: r.sender_name,
  code: formatCode(r.code),
  createdAt: r.created_at,
  expiresAt: r.expires_at,
});

export function createPairingStore(db: Db, deps: { clock: Clock; audit: AuditLog; ttlMs?: number; maxPending?: number }): PairingStore {
  const ttl = deps.ttlMs ?? PAIRING_TTL_MS;
  const maxPending = deps.maxPending ?? MAX_PENDING_PER_CHANNEL;
  const allowed = db.prepare('SELECT 1 FROM channel_allow WHERE channel = ? AND sender_id = ?');
  const recent = db.prepare("SELECT 1 FROM channel_pairing WHERE channel = ? AND sender_id = ? AND state IN ('pending','rejected') AND expires_at > ?");
  const pendingCount = db.prepare("SELECT COUNT(*) AS n FROM channel_pairing WHERE channel = ? AND state = 'pending' AND expires_at > ?");
  const codeTaken = db.prepare("SELECT 1 FROM channel_pairing WHERE channel = ? AND code = ? AND state = 'pending' AND expires_at > ?");
  const insert = db.prepare(
    "INSERT INTO channel_pairing (channel, sender_id, sender_name, code, state, created_at, expires_at, origin) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)",
  );
  const byCode = db.prepare("SELECT * FROM channel_pairing WHERE channel = ? AND code = ? AND state = 'pending' AND expires_at > ?");
  const resolve = db.prepare('UPDATE channel_pairing SET state = ?, resolved_at = ?, resolved_by = ? WHERE id = ?');
  const origin = db.prepare('SELECT origin FROM channel_pairing WHERE channel = ? AND sender_id = ? AND origin IS NOT NULL ORDER BY id DESC LIMIT 1');
  const allow = db.prepare('INSERT OR REPLACE INTO channel_allow (channel, sender_id, approved_at, approved_by) VALUES (?, ?, ?, ?)');

  const requestTx = db.transaction((channel: string, sender: { id: string; name?: string }, from?: PairingOrigin): PairingOutcome => {
    const now = deps.clock.now();
    if (recent.get(channel, sender.id, now)) return { kind: 'already-requested' };
    if ((pendingCount.get(channel, now) as { n: number }).n >= maxPending) return { kind: 'full' };
    let code = newPairingCode();
    while (codeTaken.get(channel, code, now)) code = newPairingCode();
    insert.run(channel, sender.id, sender.name ?? null, code, now, now + ttl, from ? JSON.stringify(from) : null);
    return { kind: 'issued', code: formatCode(code), expiresAt: now + ttl };
  });

  const resolveTx = db.transaction((channel: string, code: string, actor: string, state: 'approved' | 'rejected'): PairingRequest => {
    const now = deps.clock.now();
    const row = byCode.get(channel, normalizeCode(code), now) as Row | undefined;
    if (!row) throw new CarapaceError('NOT_FOUND', `no pending pairing request on ${channel} with code ${code} (codes expire after an hour)`);
    resolve.run(state, now, actor, row.id);
    if (state === 'approved') allow.run(channel, row.sender_id, now, actor);
    deps.audit.append({ actor, action: `pairing.${state === 'approved' ? 'approve' : 'reject'}`, target: `${channel}:${row.sender_id}`, data: { channel, senderId: row.sender_id, code: formatCode(row.code) } });
    return toRequest(row);
  });

  return {
    isApproved: (channel, senderId) => allowed.get(channel, senderId) !== undefined,
    request: (channel, sender, from) => requestTx.immediate(channel, sender, from),
    originOf(channel, senderId) {
      const row = origin.get(channel, senderId) as { origin: string } | undefined;
      return row ? (JSON.parse(row.origin) as PairingOrigin) : undefined;
    },
    list(channel) {
      const now = deps.clock.now();
      const rows = (channel === undefined
        ? db.prepare("SELECT * FROM channel_pairing WHERE state = 'pending' AND expires_at > ? ORDER BY created_at").all(now)
        : db.prepare("SELECT * FROM channel_pairing WHERE channel = ? AND state = 'pending' AND expires_at > ? ORDER BY created_at").all(channel, now)) as Row[];
      return rows.map(toRequest);
    },
    approve: (channel, code, actor) => resolveTx.immediate(channel, code, actor, 'approved'),
    reject: (channel, code, actor) => resolveTx.immediate(channel, code, actor, 'rejected'),
  };
}
