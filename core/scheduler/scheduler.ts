import { randomBytes } from 'node:crypto';
import type { Db } from '../store/db.ts';
import type { AuditLog } from '../audit.ts';
import type { Logger } from '../log/logger.ts';
import type { Timers } from '../timers.ts';
import { CarapaceError } from '../errors.ts';
import { CronStore, type CronJob, type CronRun, type MissedPolicy, type Claim } from './store.ts';
import { checkCronExpr, checkTimeZone, nextRun, parseAt, parseEvery, MIN_EVERY_MS, type Schedule } from './schedule.ts';

// Runs cron jobs as agent turns. Missed-run policy: a run whose time passed more
// than `graceMs` ago (the gateway was down or asleep) is a missed run; per job,
// `run-once` (default) runs it once on catching up however many were missed,
// `skip` records it as skipped and waits for the next time. A job never overlaps
// itself: a due run while the previous one is still going is recorded as
// skipped (reason `overlap`). Two gateways on one database never double-fire:
// claims are compare-and-set transactions in SQLite (store.ts).

export type RunTurn = (req: { agentId: string; sessionKey: string; message: string }) => Promise<{ text: string }>;
export type Deliver = (target: string, text: string) => Promise<void>;

export interface JobSpec {
  name?: string;
  agentId?: string;
  cron?: string;
  tz?: string;
  at?: string | number;
  every?: string | number;
  message: string;
  sessionKey?: string;
  deliver?: string;
  missed?: MissedPolicy;
}

export interface SchedulerDeps {
  db: Db;
  /** Whether an agent of this id exists (agents.list): a job for none would fail at every run. */
  knownAgent?: (agentId: string) => boolean;
  timers: Timers;
  audit: AuditLog;
  runTurn: RunTurn;
  deliver: Deliver;
  log?: Logger;
  /** Identifies this process in claims; random by default. */
  instance?: string;
  graceMs?: number;
  /** A run that has not finished after this long no longer blocks the next one (its gateway died). */
  leaseMs?: number;
  /** Longest sleep between checks, so jobs added by another process are noticed. */
  maxSleepMs?: number;
}

export interface Scheduler {
  add(spec: JobSpec, by: string): CronJob;
  remove(id: string, by: string): void;
  list(): CronJob[];
  get(id: string): CronJob | undefined;
  runs(id: string): CronRun[];
  /** Run now, outside the schedule (does not move the next run). Resolves when the run finishes. */
  runNow(id: string, by: string): Promise<CronRun>;
  /** Claim and start every due job; resolves once they are started (see idle()). */
  tick(): Claim[];
  /** Resolves when every run this scheduler started has finished. */
  idle(): Promise<void>;
  start(): void;
  stop(): Promise<void>;
}

export function defaultSessionKey(jobId: string): string {
  return `cron:${jobId}`;
}

export function createScheduler(deps: SchedulerDeps): Scheduler {
  const store = new CronStore(deps.db);
  const { timers, audit } = deps;
  const instance = deps.instance ?? `sched_${randomBytes(6).toString('hex')}`;
  const graceMs = deps.graceMs ?? 2 * 60_000;
  const leaseMs = deps.leaseMs ?? 60 * 60_000;
  const maxSleepMs = deps.maxSleepMs ?? 60_000;
  const inflight = new Set<Promise<void>>();
  let cancelTimer: (() => void) | null = null;
  let running = false;

  async function execute(job: CronJob, runId: number): Promise<void> {
    const sessionKey = job.sessionKey ?? defaultSessionKey(job.id);
    audit.append({ actor: 'kernel:scheduler', action: 'cron.fired', target: job.id, sessionKey, data: { runId } });
    try {
      const { text } = await deps.runTurn({ agentId: job.agentId, sessionKey, message: job.message });
      if (job.deliver && text.trim() !== '') await deps.deliver(job.deliver, text);
      store.finish(runId, job.id, instance, timers.now(), 'ok', text, null);
    } catch (err) {
      const msg = (err as Error)?.message ?? String(err);
      deps.log?.warn('cron run failed', { jobId: job.id, runId, error: msg });
      store.finish(runId, job.id, instance, timers.now(), 'error', null, msg);
    }
  }

  function track(p: Promise<void>): Promise<void> {
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
    return p;
  }

  function arm(): void {
    cancelTimer?.();
    cancelTimer = null;
    if (!running) return;
    const earliest = store.earliest();
    const delay = earliest === null ? maxSleepMs : Math.min(Math.max(0, earliest - timers.now()), maxSleepMs);
    cancelTimer = timers.setTimeout(() => {
      cancelTimer = null;
      try {
        tick();
      } catch (err) {
        deps.log?.error('scheduler tick failed', { error: (err as Error).message });
      }
      arm();
    }, delay);
  }

  function tick(): Claim[] {
    const now = timers.now();
    const claims: Claim[] = [];
    for (const d of store.due(now)) {
      const c = store.claim(d.id, d.nextRunAt, now, instance, graceMs, leaseMs);
      claims.push(c);
      if (c.kind === 'run') track(execute(c.job, c.runId));
      else if (c.kind === 'skipped') deps.log?.info('cron run skipped', { jobId: c.job.id, reason: c.reason });
    }
    return claims;
  }

  function validate(spec: JobSpec, now: number): Omit<CronJob, 'id' | 'runningBy' | 'runningSince' | 'lastRunAt' | 'lastStatus' | 'createdAt' | 'createdBy'> {
    if (typeof spec.message !== 'string' || spec.message.trim() === '') throw new CarapaceError('INVALID_REQUEST', 'a job needs a message', { pointer: '/params/message' });
    const kinds = [spec.cron !== undefined, spec.at !== undefined, spec.every !== undefined].filter(Boolean).length;
    if (kinds !== 1) throw new CarapaceError('INVALID_REQUEST', 'give exactly one of cron, at or every', { pointer: '/params' });
    if (spec.agentId !== undefined && deps.knownAgent && !deps.knownAgent(spec.agentId)) {
      throw new CarapaceError('NOT_FOUND', `no agent "${spec.agentId}" in agents.list`, { pointer: '/params/agentId' });
    }
    if (spec.tz !== undefined && spec.cron === undefined) throw new CarapaceError('INVALID_REQUEST', 'tz applies to cron expressions only', { pointer: '/params/tz' });
    let schedule: Schedule;
    if (spec.cron !== undefined) {
      const tz = spec.tz ?? 'UTC';
      checkTimeZone(tz);
      checkCronExpr(spec.cron, tz);
      schedule = { kind: 'cron', expr: spec.cron.trim(), tz, atMs: null, everyMs: null };
    } else if (spec.at !== undefined) {
      const at = parseAt(spec.at);
      if (at <= now) throw new CarapaceError('INVALID_REQUEST', `at ${new Date(at).toISOString()} is in the past`, { pointer: '/params/at' });
      schedule = { kind: 'at', expr: null, tz: null, atMs: at, everyMs: null };
    } else {
      const every = parseEvery(spec.every!);
      if (every < MIN_EVERY_MS) throw new CarapaceError('INVALID_REQUEST', `every must be at least ${MIN_EVERY_MS / 1000}s`, { pointer: '/params/every' });
      schedule = { kind: 'every', expr: null, tz: null, atMs: now, everyMs: every };
    }
    if (spec.missed !== undefined && spec.missed !== 'run-once' && spec.missed !== 'skip') {
      throw new CarapaceError('INVALID_REQUEST', 'missed must be "run-once" or "skip"', { pointer: '/params/missed' });
    }
    return {
      ...schedule,
      name: spec.name ?? null,
      agentId: spec.agentId ?? 'main',
      message: spec.message,
      sessionKey: spec.sessionKey ?? null,
      deliver: spec.deliver ?? null,
      missed: spec.missed ?? 'run-once',
      enabled: true,
      nextRunAt: nextRun(schedule, now),
    };
  }

  return {
    add(spec, by) {
      const now = timers.now();
      const v = validate(spec, now);
      const id = `cron_${randomBytes(5).toString('hex')}`;
      const job = store.insert({ ...v, id, createdAt: now, createdBy: by });
      audit.append({ actor: by, action: 'cron.add', target: id, data: { kind: job.kind, expr: job.expr, tz: job.tz, atMs: job.atMs, everyMs: job.everyMs, deliver: job.deliver, agentId: job.agentId } });
      arm();
      return job;
    },
    remove(id, by) {
      if (!store.remove(id)) throw new CarapaceError('NOT_FOUND', `no cron job ${id}`);
      audit.append({ actor: by, action: 'cron.remove', target: id });
      arm();
    },
    list: () => store.list(),
    get: (id) => store.get(id),
    runs: (id) => store.runs(id),
    async runNow(id, by) {
      const c = store.claimManual(id, timers.now(), instance, leaseMs);
      if (c.kind === 'missing') throw new CarapaceError('NOT_FOUND', `no cron job ${id}`);
      if (c.kind === 'busy') throw new CarapaceError('CONFLICT', `cron job ${id} is already running`);
      audit.append({ actor: by, action: 'cron.run', target: id, data: { runId: c.runId } });
      await track(execute(c.job, c.runId));
      return store.runs(id).find((r) => r.id === c.runId)!;
    },
    tick,
    async idle() {
      while (inflight.size > 0) await Promise.all([...inflight]);
    },
    start() {
      running = true;
      tick(); // catch up on runs missed while down, per each job's policy
      arm();
    },
    async stop() {
      running = false;
      cancelTimer?.();
      cancelTimer = null;
      while (inflight.size > 0) await Promise.all([...inflight]);
    },
  };
}
