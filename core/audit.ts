import { createHash } from 'node:crypto';
import type { Db } from './store/db.ts';
import { redact } from './log/redact.ts';

// The append-only, hash-chained audit log. This module is the only writer of the
// `audit` table. Each row's hash covers the previous row's hash, so editing or
// deleting any row breaks verification from that row on.

export interface AuditEntry {
  actor: string;
  action: string;
  target?: string | null;
  sessionKey?: string | null;
  data?: Record<string, unknown>;
}

export interface AuditRow {
  seq: number;
  ts: number;
  actor: string;
  action: string;
  target: string | null;
  sessionKey: string | null;
  data: Record<string, unknown>;
  hash: string;
}

const GENESIS = '0'.repeat(64);

function rowHash(prev: string, seq: number, ts: number, actor: string, action: string, target: string | null, session: string | null, data: string): string {
  return createHash('sha256').update(JSON.stringify([prev, seq, ts, actor, action, target, session, data])).digest('hex');
}

export interface AuditLog {
  append(entry: AuditEntry): number;
  list(filter?: { since?: number; sessionKey?: string; limit?: number; action?: string }): AuditRow[];
  verify(): { ok: true; rows: number } | { ok: false; rows: number; brokenAt: number; reason: string };
}

export function createAuditLog(db: Db, opts: { now?: () => number; secretValues?: () => Iterable<string> } = {}): AuditLog {
  const now = opts.now ?? Date.now;
  const last = db.prepare('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1');
  const insert = db.prepare(
    'INSERT INTO audit (seq, ts, actor, action, target, session_key, data, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?)',
  );
  // IMMEDIATE: two processes (gateway and an offline CLI verb) must never fork the chain.
  const appendTx = db.transaction((entry: AuditEntry) => {
    const prev = last.get() as { seq: number; hash: string } | undefined;
    const seq = (prev?.seq ?? 0) + 1;
    const ts = now();
    const data = JSON.stringify(redact(entry.data ?? {}, opts.secretValues?.() ?? []));
    const target = entry.target ?? null;
    const session = entry.sessionKey ?? null;
    const hash = rowHash(prev?.hash ?? GENESIS, seq, ts, entry.actor, entry.action, target, session, data);
    insert.run(seq, ts, entry.actor, entry.action, target, session, data, prev?.hash ?? GENESIS, hash);
    return seq;
  });

  return {
    append: (entry) => appendTx.immediate(entry),
    list(filter = {}) {
      const where: string[] = [];
      const args: unknown[] = [];
      if (filter.since !== undefined) (where.push('ts >= ?'), args.push(filter.since));
      if (filter.sessionKey !== undefined) (where.push('session_key = ?'), args.push(filter.sessionKey));
      if (filter.action !== undefined) (where.push('action = ?'), args.push(filter.action));
      const sql = `SELECT * FROM audit ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY seq DESC LIMIT ?`;
      const rows = db.prepare(sql).all(...args, filter.limit ?? 1000) as Record<string, unknown>[];
      return rows.reverse().map((r) => ({
        seq: r.seq as number,
        ts: r.ts as number,
        actor: r.actor as string,
        action: r.action as string,
        target: r.target as string | null,
        sessionKey: r.session_key as string | null,
        data: JSON.parse(r.data as string) as Record<string, unknown>,
        hash: r.hash as string,
      }));
    },
    verify() {
      let prev = GENESIS;
      let expectedSeq = 1;
      let count = 0;
      for (const r of db.prepare('SELECT * FROM audit ORDER BY seq').iterate() as Iterable<Record<string, unknown>>) {
        count++;
        const seq = r.seq as number;
        if (seq !== expectedSeq) return { ok: false, rows: count, brokenAt: seq, reason: `row ${expectedSeq} is missing` };
        if (r.prev_hash !== prev) return { ok: false, rows: count, brokenAt: seq, reason: 'previous-hash link broken' };
        const h = rowHash(prev, seq, r.ts as number, r.actor as string, r.action as string, r.target as string | null, r.session_key as string | null, r.data as string);
        if (h !== r.hash) return { ok: false, rows: count, brokenAt: seq, reason: 'row content does not match its hash' };
        prev = h;
        expectedSeq++;
      }
      return { ok: true, rows: count };
    },
  };
}
