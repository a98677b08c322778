import { createRequire } from 'node:module';
import type { CronExpressionParser } from 'cron-parser';
import { CarapaceError } from '../errors.ts';

// Loaded on the first cron expression: cron-parser brings luxon (~3 MB of heap),
// which a gateway without cron jobs never needs.
const require = createRequire(import.meta.url);
let cronParser: typeof CronExpressionParser | null = null;
function cron(): typeof CronExpressionParser {
  return (cronParser ??= (require('cron-parser') as typeof import('cron-parser')).CronExpressionParser);
}

// When a job runs next. Three kinds: a five-field cron expression in an IANA
// time zone, a one-shot `at`, and a fixed interval `every` anchored at creation
// (so a restart does not drift it).

export type ScheduleKind = 'cron' | 'at' | 'every';

export interface Schedule {
  kind: ScheduleKind;
  expr: string | null;
  tz: string | null;
  /** `at`: the moment; `every`: the anchor. */
  atMs: number | null;
  everyMs: number | null;
}

export const MIN_EVERY_MS = 60_000;

/** `field`: the cron.add / cron tool parameter at fault, as the pointer of the refusal. */
function invalid(field: 'tz' | 'cron' | 'every' | 'at', message: string): CarapaceError {
  return new CarapaceError('INVALID_REQUEST', message, { pointer: `/params/${field}` });
}

export function checkTimeZone(tz: string): void {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
  } catch {
    throw invalid('tz', `unknown time zone "${tz}" (use an IANA name like Europe/Berlin)`);
  }
}

export function checkCronExpr(expr: string, tz: string | null): void {
  const fields = expr.trim().split(/\s+/);
  // cron-parser also takes 6 fields (seconds) and quietly pads 4; the contract is five.
  if (fields.length !== 5) throw invalid('cron', `cron expression "${expr}" must have exactly five fields (minute hour day month weekday)`);
  try {
    cron().parse(expr, { tz: tz ?? 'UTC', strict: false }).next();
  } catch (err) {
    throw invalid('cron', `cron expression "${expr}" is not valid: ${(err as Error).message}`);
  }
}

/** "90s", "15m", "2h", "1d" or milliseconds. */
export function parseEvery(v: string | number): number {
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw invalid('every', 'every must be whole milliseconds');
    return v;
  }
  const m = /^(\d{1,9})\s*(ms|s|m|h|d)$/.exec(v.trim());
  if (!m) throw invalid('every', `every "${v}" is not a duration like 15m, 2h or 1d`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}

/** An ISO date-time (with offset or Z) or epoch milliseconds. */
export function parseAt(v: string | number): number {
  const t = typeof v === 'number' ? v : /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(t)) throw invalid('at', `at "${v}" is not a date-time (use ISO 8601 with a zone, e.g. 2025-03-01T07:00:00+01:00)`);
  return t;
}

/** The first run strictly after `after`, or null when there is none (a past `at`). */
export function nextRun(s: Schedule, after: number): number | null {
  switch (s.kind) {
    case 'at':
      return s.atMs !== null && s.atMs > after ? s.atMs : null;
    case 'every': {
      const anchor = s.atMs ?? 0;
      const every = s.everyMs ?? MIN_EVERY_MS;
      if (after < anchor) return anchor;
      return anchor + (Math.floor((after - anchor) / every) + 1) * every;
    }
    case 'cron': {
      const it = cron().parse(s.expr ?? '', { currentDate: new Date(after), tz: s.tz ?? 'UTC' });
      const t = it.next().getTime();
      return t > after ? t : it.next().getTime();
    }
  }
}
