import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { Db } from './store/db.ts';
import { redact } from './log/redact.ts';
import { writeFileAtomic, type HomePaths } from './home.ts';
import { loadOrCreateKey, readKeyFile, sign, verify as verifySig, type KeyPair } from './identity/keys.ts';

// The append-only, hash-chained audit log. This module is the only writer of the
// `audit` table. Each row's hash covers the previous row's hash, so editing or
// deleting any row breaks verification from that row on.
//
// The chain alone cannot see the newest rows being cut off: a shorter chain is
// still a valid chain. So every append also writes the head (seq + hash), signed
// with the gateway key, to $CARAPACE_HOME/audit-head.json — outside the database,
// so one SQL statement (or a db-only copy) cannot remove rows and roll the head
// back together, and signed, so a process without the gateway key cannot forge a
// shorter head. The head file is written after the row commits: it may lag the
// table (two writers racing), never lead it, so lag is harmless and a head that
// names a row the table lacks means rows were removed. This module is the only
// writer of that file too.

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

export type AuditVerdict =
  | { ok: true; rows: number; anchoredSeq?: number }
  | { ok: false; rows: number; brokenAt: number; reason: string };

export interface AuditLog {
  append(entry: AuditEntry): number;
  list(filter?: { since?: number; sessionKey?: string; limit?: number; action?: string }): AuditRow[];
  verify(): AuditVerdict;
}

/** Where the signed head lives and the gateway key that signs (and checks) it. */
export interface AuditAnchor {
  path: string;
  key: KeyPair;
}

interface HeadFile {
  v: 1;
  seq: number;
  hash: string;
  gatewayId: string;
  sig: string;
}

function headMessage(seq: number, hash: string): string {
  return `carapace-audit-head:v1:${seq}:${hash}`;
}

function readHead(path: string): HeadFile | null | 'corrupt' {
  if (!existsSync(path)) return null;
  try {
    const h = JSON.parse(readFileSync(path, 'utf8')) as HeadFile;
    if (h.v !== 1 || !Number.isSafeInteger(h.seq) || typeof h.hash !== 'string' || typeof h.sig !== 'string') return 'corrupt';
    return h;
  } catch {
    return 'corrupt';
  }
}

function writeHead(anchor: AuditAnchor, seq: number, hash: string): void {
  const current = readHead(anchor.path);
  // Another writer already anchored a later row: keep theirs (the head never moves back).
  if (current && current !== 'corrupt' && current.seq >= seq) return;
  const head: HeadFile = { v: 1, seq, hash, gatewayId: anchor.key.id, sig: sign(headMessage(seq, hash), anchor.key) };
  writeFileAtomic(anchor.path, JSON.stringify(head) + '\n', 0o600);
}

/**
 * The audit log of a home with its head anchored by the gateway key (created on
 * first use, as the gateway would). What the gateway and every CLI verb that
 * appends should use, so that no append leaves the head behind.
 */
export function openAuditLog(db: Db, paths: HomePaths, opts: { now?: () => number; secretValues?: () => Iterable<string>; key?: KeyPair } = {}): AuditLog {
  return createAuditLog(db, { ...opts, anchor: { path: paths.auditHead, key: opts.key ?? loadOrCreateKey(paths.gatewayKey) } });
}

/**
 * Verify a home's audit log read-only: the chain, and the signed head when the
 * gateway key exists (it is never created here: verify must not change state).
 */
export function verifyAuditLog(db: Db, paths: HomePaths): AuditVerdict {
  const key = existsSync(paths.gatewayKey) ? readKeyFile(paths.gatewayKey) : null;
  if (!key) {
    const chain = createAuditLog(db).verify();
    if (chain.ok && existsSync(paths.auditHead)) {
      return { ok: false, rows: chain.rows, brokenAt: 0, reason: `an audit head exists but ${paths.gatewayKey} does not: the signer is gone` };
    }
    return chain;
  }
  return createAuditLog(db, { anchor: { path: paths.auditHead, key } }).verify();
}

export function createAuditLog(db: Db, opts: { now?: () => number; secretValues?: () => Iterable<string>; anchor?: AuditAnchor } = {}): AuditLog {
  const now = opts.now ?? Date.now;
  const anchor = opts.anchor;
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
    return { seq, hash };
  });

  return {
    append(entry) {
      const { seq, hash } = appendTx.immediate(entry);
      if (anchor) writeHead(anchor, seq, hash);
      return seq;
    },
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
      if (!anchor) return { ok: true, rows: count };
      return checkHead(anchor, count, prev, (seq) => (db.prepare('SELECT hash FROM audit WHERE seq = ?').get(seq) as { hash: string } | undefined)?.hash);
    },
  };
}

/** The chain verified up to `rows` rows ending in `lastHash`; does the signed head agree? */
function checkHead(anchor: AuditAnchor, rows: number, lastHash: string, hashAt: (seq: number) => string | undefined): AuditVerdict {
  const head = readHead(anchor.path);
  if (head === 'corrupt') return { ok: false, rows, brokenAt: 0, reason: `${anchor.path} is not a valid audit head file` };
  if (head === null) {
    if (rows === 0) return { ok: true, rows };
    return { ok: false, rows, brokenAt: 0, reason: `the audit head file ${anchor.path} is missing although the log has ${rows} rows` };
  }
  if (head.gatewayId !== anchor.key.id || !verifySig(headMessage(head.seq, head.hash), head.sig, anchor.key.publicKey)) {
    return { ok: false, rows, brokenAt: head.seq, reason: 'the audit head is not signed by this gateway key' };
  }
  if (head.seq > rows) {
    return { ok: false, rows, brokenAt: rows + 1, reason: `the newest rows were removed: the signed head is row ${head.seq} but the log ends at row ${rows}` };
  }
  const stored = head.seq === rows ? lastHash : hashAt(head.seq);
  if (stored !== head.hash) return { ok: false, rows, brokenAt: head.seq, reason: `row ${head.seq} differs from the signed head` };
  return { ok: true, rows, anchoredSeq: head.seq };
}
