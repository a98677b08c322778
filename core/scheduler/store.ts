import type { Db } from '../store/db.ts';
import { nextRun, type Schedule, type ScheduleKind } from './schedule.ts';

// The only writer of `cron_jobs` and `cron_runs`. Every state change that two
// gateway processes could race on (claiming a due run, starting a manual run)
// is one IMMEDIATE transaction that re-reads the row and compares `next_run_at`
// / `running_by`, so exactly one claimer wins; UNIQUE(job_id, scheduled_for) on
// the runs is the backstop.

export type MissedPolicy = 'run-once' | 'skip';

export interface CronJob extends Schedule {
  id: string;
  name: string | null;
  agentId: string;
  message: string;
  sessionKey: string | null;
  deliver: string | null;
  missed: MissedPolicy;
  enabled: boolean;
  nextRunAt: number | null;
  runningBy: string | null;
  runningSince: number | null;
  lastRunAt: number | null;
  lastStatus: string | null;
  createdAt: number;
  createdBy: string;
}

export interface CronRun {
  id: number;
  jobId: string;
  scheduledFor: number;
  startedAt: number;
  finishedAt: number | null;
  status: 'running' | 'ok' | 'error' | 'skipped';
  reason: string | null;
  output: string | null;
  instance: string;
}

export type Claim =
  | { kind: 'run'; job: CronJob; runId: number; scheduledFor: number; missed: boolean }
  | { kind: 'skipped'; job: CronJob; reason: 'missed' | 'overlap'; scheduledFor: number }
  | { kind: 'lost' };

function toJob(r: Record<string, unknown>): CronJob {
  return {
    id: r.id as string,
    name: r.name as string | null,
    agentId: r.agent_id as string,
    kind: r.kind as ScheduleKind,
    expr: r.expr as string | null,
    tz: r.tz as string | null,
    atMs: r.at_ms as number | null,
    everyMs: r.every_ms as number | null,
    message: r.message as string,
    sessionKey: r.session_key as string | null,
    deliver: r.deliver as string | null,
    missed: r.missed as MissedPolicy,
    enabled: r.enabled === 1,
    nextRunAt: r.next_run_at as number | null,
    runningBy: r.running_by as string | null,
    runningSince: r.running_since as number | null,
    lastRunAt: r.last_run_at as number | null,
    lastStatus: r.last_status as string | null,
    createdAt: r.created_at as number,
    createdBy: r.created_by as string,
  };
}

function toRun(r: Record<string, unknown>): CronRun {
  return {
    id: r.id as number,
    jobId: r.job_id as string,
    scheduledFor: r.scheduled_for as number,
    startedAt: r.started_at as number,
    finishedAt: r.finished_at as number | null,
    status: r.status as CronRun['status'],
    reason: r.reason as string | null,
    output: r.output as string | null,
    instance: r.instance as string,
  };
}

const MAX_OUTPUT = 4000;

export class CronStore {
  readonly #db: Db;
  readonly #get;
  readonly #insertRun;
  readonly #claimTx;
  readonly #manualTx;

  constructor(db: Db) {
    this.#db = db;
    this.#get = db.prepare('SELECT * FROM cron_jobs WHERE id = ?');
    this.#insertRun = db.prepare(
      'INSERT INTO cron_runs (job_id, scheduled_for, started_at, status, reason, instance, finished_at) VALUES (?,?,?,?,?,?,?)',
    );
    this.#claimTx = db.transaction((id: string, expected: number, now: number, instance: string, graceMs: number, leaseMs: number): Claim => {
      const row = this.#get.get(id) as Record<string, unknown> | undefined;
      if (!row) return { kind: 'lost' };
      const job = toJob(row);
      if (!job.enabled || job.nextRunAt !== expected) return { kind: 'lost' };
      const next = nextRun(job, now);
      const missed = now - expected > graceMs;
      const busy = job.runningBy !== null && (job.runningSince ?? 0) + leaseMs > now;
      if (busy || (missed && job.missed === 'skip')) {
        const reason = busy ? 'overlap' : 'missed';
        db.prepare('UPDATE cron_jobs SET next_run_at = ? WHERE id = ?').run(next, id);
        this.#insertRun.run(id, expected, now, 'skipped', reason, instance, now);
        return { kind: 'skipped', job, reason, scheduledFor: expected };
      }
      db.prepare('UPDATE cron_jobs SET next_run_at = ?, running_by = ?, running_since = ? WHERE id = ?').run(next, instance, now, id);
      const runId = Number(this.#insertRun.run(id, expected, now, 'running', missed ? 'missed, run once' : null, instance, null).lastInsertRowid);
      return { kind: 'run', job, runId, scheduledFor: expected, missed };
    });
    this.#manualTx = db.transaction((id: string, now: number, instance: string, leaseMs: number) => {
      const row = this.#get.get(id) as Record<string, unknown> | undefined;
      if (!row) return { kind: 'missing' as const };
      const job = toJob(row);
      if (job.runningBy !== null && (job.runningSince ?? 0) + leaseMs > now) return { kind: 'busy' as const, job };
      db.prepare('UPDATE cron_jobs SET running_by = ?, running_since = ? WHERE id = ?').run(instance, now, id);
      const runId = Number(this.#insertRun.run(id, now, now, 'running', 'manual', instance, null).lastInsertRowid);
      return { kind: 'run' as const, job, runId };
    });
  }

  insert(job: Omit<CronJob, 'runningBy' | 'runningSince' | 'lastRunAt' | 'lastStatus'>): CronJob {
    this.#db
      .prepare(
        `INSERT INTO cron_jobs (id, name, agent_id, kind, expr, tz, at_ms, every_ms, message, session_key, deliver, missed, enabled, next_run_at, created_at, created_by)
         VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
      )
      .run(job.id, job.name, job.agentId, job.kind, job.expr, job.tz, job.atMs, job.everyMs, job.message, job.sessionKey, job.deliver, job.missed, job.enabled ? 1 : 0, job.nextRunAt, job.createdAt, job.createdBy);
    return this.get(job.id)!;
  }

  get(id: string): CronJob | undefined {
    const r = this.#get.get(id) as Record<string, unknown> | undefined;
    return r ? toJob(r) : undefined;
  }

  list(): CronJob[] {
    return (this.#db.prepare('SELECT * FROM cron_jobs ORDER BY created_at, id').all() as Record<string, unknown>[]).map(toJob);
  }

  remove(id: string): boolean {
    return this.#db.transaction(() => {
      this.#db.prepare('DELETE FROM cron_runs WHERE job_id = ?').run(id);
      return this.#db.prepare('DELETE FROM cron_jobs WHERE id = ?').run(id).changes === 1;
    }).immediate();
  }

  due(now: number): { id: string; nextRunAt: number }[] {
    return this.#db
      .prepare('SELECT id, next_run_at AS nextRunAt FROM cron_jobs WHERE enabled = 1 AND next_run_at IS NOT NULL AND next_run_at <= ? ORDER BY next_run_at')
      .all(now) as { id: string; nextRunAt: number }[];
  }

  earliest(): number | null {
    const r = this.#db.prepare('SELECT MIN(next_run_at) AS t FROM cron_jobs WHERE enabled = 1 AND next_run_at IS NOT NULL').get() as { t: number | null };
    return r.t;
  }

  claim(id: string, expected: number, now: number, instance: string, graceMs: number, leaseMs: number): Claim {
    try {
      return this.#claimTx.immediate(id, expected, now, instance, graceMs, leaseMs);
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') return { kind: 'lost' };
      throw err;
    }
  }

  claimManual(id: string, now: number, instance: string, leaseMs: number) {
    return this.#manualTx.immediate(id, now, instance, leaseMs);
  }

  finish(runId: number, jobId: string, instance: string, now: number, status: 'ok' | 'error', output: string | null, reason: string | null): void {
    this.#db.transaction(() => {
      this.#db
        .prepare('UPDATE cron_runs SET status = ?, finished_at = ?, output = ?, reason = COALESCE(?, reason) WHERE id = ?')
        .run(status, now, output === null ? null : output.slice(0, MAX_OUTPUT), reason, runId);
      this.#db
        .prepare('UPDATE cron_jobs SET running_by = NULL, running_since = NULL, last_run_at = ?, last_status = ? WHERE id = ? AND running_by = ?')
        .run(now, status, jobId, instance);
    }).immediate();
  }

  runs(jobId: string, limit = 50): CronRun[] {
    return (this.#db.prepare('SELECT * FROM cron_runs WHERE job_id = ? ORDER BY id DESC LIMIT ?').all(jobId, limit) as Record<string, unknown>[])
      .map(toRun)
      .reverse();
  }
}
