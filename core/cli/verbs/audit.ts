import { existsSync } from 'node:fs';
import { CliError, UsageError } from '../../errors.ts';
import { openDb, type Db } from '../../store/db.ts';
import { createAuditLog, verifyAuditLog, type AuditRow } from '../../audit.ts';
import type { Verb, CliIO } from '../main.ts';

const usage = `usage: carapace audit [--since T] [--session KEY] [--action A] [--limit N] [--json]
       carapace audit verify [--json]

Shows the hash-chained audit log, oldest first (the newest --limit rows, default
1000). T is an ISO date/time (2025-01-06, 2025-01-06T07:00Z), epoch milliseconds,
or an age: 30m, 12h, 7d. verify checks every row's hash link and the signed
chain head, so edited, deleted or cut-off rows are all detected; exits 1 when
the log has been tampered with. Reads the database read-only: safe beside a
running gateway, and works with none.`;

const AGE = /^(\d+)(s|m|h|d|w)$/;
const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;

export function parseSince(text: string, now = Date.now()): number {
  const age = AGE.exec(text);
  if (age) return now - Number(age[1]) * UNIT_MS[age[2] as keyof typeof UNIT_MS];
  if (/^\d{10,}$/.test(text)) return Number(text);
  // Date-time forms only: Date.parse accepts much else ("1", "March") that is surely a typo.
  if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text)) {
    const ms = Date.parse(text);
    if (Number.isFinite(ms)) return ms;
  }
  throw new UsageError(`--since "${text}" is not a date (2025-01-06T07:00Z), epoch ms, or an age (30m, 12h, 7d)`);
}

function openReadOnly(io: CliIO): Db | null {
  if (!existsSync(io.paths.db)) return null;
  try {
    return openDb(io.paths.db, { readonly: true });
  } catch (err) {
    throw new CliError(`cannot open ${io.paths.db}: ${(err as Error).message}`);
  }
}

function line(r: AuditRow): string {
  const parts = [new Date(r.ts).toISOString(), `#${r.seq}`, r.actor, r.action];
  if (r.target) parts.push(r.target);
  if (r.sessionKey) parts.push(`session=${r.sessionKey}`);
  if (Object.keys(r.data).length) parts.push(JSON.stringify(r.data));
  return parts.join('  ');
}

export const verb: Verb = {
  usage,
  options: {
    since: { type: 'string' },
    session: { type: 'string' },
    action: { type: 'string' },
    limit: { type: 'string' },
  },
  async run(io, { positionals, values }) {
    const [sub, ...rest] = positionals;
    if (rest.length) throw new UsageError('too many arguments');
    if (sub === 'verify') {
      // No database: nothing was logged, unless a signed head says otherwise.
      const db = openReadOnly(io) ?? openDb(':memory:');
      let verdict;
      try {
        verdict = verifyAuditLog(db, io.paths);
      } finally {
        db.close();
      }
      if (io.json) io.emit(verdict);
      else if (verdict.ok) io.say(`audit log intact: ${verdict.rows} rows${verdict.anchoredSeq ? `, signed head at row ${verdict.anchoredSeq}` : ''}`);
      if (!verdict.ok) {
        io.stderr.write(`carapace audit: TAMPERED at row ${verdict.brokenAt}: ${verdict.reason}\n`);
        return 1;
      }
      return 0;
    }
    if (sub !== undefined) throw new UsageError(`unknown sub-verb "${sub}"`);
    let limit = 1000;
    if (values.limit !== undefined) {
      limit = Number(values.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit must be a positive integer');
    }
    const since = values.since === undefined ? undefined : parseSince(values.since as string);
    const db = openReadOnly(io);
    let rows: AuditRow[] = [];
    if (db) {
      try {
        rows = createAuditLog(db).list({ since, sessionKey: values.session as string | undefined, action: values.action as string | undefined, limit });
      } finally {
        db.close();
      }
    }
    if (io.json) io.emit({ entries: rows });
    else if (rows.length === 0) io.say('no audit entries match');
    else for (const r of rows) io.say(line(r));
    return 0;
  },
};
