import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDb, type Db } from '../../core/store/db.ts';
import { createAuditLog } from '../../core/audit.ts';
import { createScheduler, type Scheduler, type SchedulerDeps } from '../../core/scheduler/scheduler.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

let base: string;
let dbs: Db[];
let schedulers: Scheduler[];
let clock: FakeClock;
let turns: { agentId: string; sessionKey: string; message: string }[];
let delivered: { target: string; text: string }[];

beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'carapace-cron-'));
  dbs = [];
  schedulers = [];
  clock = new FakeClock('2025-01-06T05:00:00Z'); // a Monday
  turns = [];
  delivered = [];
});
afterEach(async () => {
  for (const s of schedulers) await s.stop();
  for (const d of dbs) d.close();
  rmSync(base, { recursive: true, force: true });
});

function scheduler(extra: Partial<SchedulerDeps> = {}): Scheduler {
  const db = openDb(join(base, 'carapace.db'));
  dbs.push(db);
  const s = createScheduler({
    db,
    timers: clock,
    audit: createAuditLog(db, { now: () => clock.now() }),
    runTurn: async (req) => {
      turns.push(req);
      return { text: `done: ${req.message}` };
    },
    deliver: async (target, text) => void delivered.push({ target, text }),
    ...extra,
  });
  schedulers.push(s);
  return s;
}

test('a weekday 07:00 Berlin job fires at 06:00 UTC in winter, in its own session, and delivers', async () => {
  const s = scheduler();
  const job = s.add({ cron: '0 7 * * 1-5', tz: 'Europe/Berlin', message: 'morning brief', deliver: 'telegram:42' }, 'device:owner');
  assert.equal(job.nextRunAt, Date.parse('2025-01-06T06:00:00Z'));
  s.start();
  await clock.set('2025-01-06T05:59:59Z');
  assert.equal(turns.length, 0);
  await clock.advance(1000);
  await s.idle();
  assert.deepEqual(turns, [{ agentId: 'main', sessionKey: `cron:${job.id}`, message: 'morning brief' }]);
  assert.deepEqual(delivered, [{ target: 'telegram:42', text: 'done: morning brief' }]);
  assert.equal(s.get(job.id)!.nextRunAt, Date.parse('2025-01-07T06:00:00Z'));
  assert.equal(s.runs(job.id)[0].status, 'ok');
});

test('a job can run in a named session', async () => {
  const s = scheduler();
  s.add({ every: '1h', message: 'check', sessionKey: 'agent:main:ops' }, 'device:owner');
  s.start();
  await clock.advance(3_600_000);
  await s.idle();
  assert.equal(turns[0].sessionKey, 'agent:main:ops');
});

test('a one-shot at job runs once and then never again', async () => {
  const s = scheduler();
  const job = s.add({ at: '2025-01-06T05:30:00Z', message: 'remind me' }, 'device:owner');
  s.start();
  await clock.advance(24 * 3_600_000);
  await s.idle();
  assert.equal(turns.length, 1);
  assert.equal(s.get(job.id)!.nextRunAt, null);
});

test('jobs survive a store reopen and fire afterwards', async () => {
  const first = scheduler();
  const job = first.add({ cron: '30 5 * * *', message: 'persisted' }, 'device:owner');
  await first.stop();
  dbs[0].close();
  dbs.shift();
  const second = scheduler();
  assert.deepEqual(second.list().map((j) => j.id), [job.id]);
  second.start();
  await clock.set('2025-01-06T05:30:00Z');
  await second.idle();
  assert.equal(turns.length, 1);
});

test('runs missed while the gateway was down run once on start by default', async () => {
  const first = scheduler();
  const job = first.add({ every: '1h', message: 'hourly' }, 'device:owner');
  await clock.advance(5 * 3_600_000 + 10 * 60_000); // down: nothing started, five runs missed
  const second = scheduler();
  second.start();
  await second.idle();
  assert.equal(turns.length, 1);
  assert.equal(second.runs(job.id)[0].reason, 'missed, run once');
  assert.equal(second.get(job.id)!.nextRunAt, Date.parse('2025-01-06T11:00:00Z'));
});

test('a job with missed: skip does not run for missed times and waits for the next one', async () => {
  const first = scheduler();
  const job = first.add({ every: '1h', message: 'hourly', missed: 'skip' }, 'device:owner');
  await clock.advance(5 * 3_600_000 + 10 * 60_000);
  const second = scheduler();
  second.start();
  await second.idle();
  assert.equal(turns.length, 0);
  assert.equal(second.runs(job.id)[0].status, 'skipped');
  await clock.set('2025-01-06T11:00:00Z');
  await second.idle();
  assert.equal(turns.length, 1);
});

test('two schedulers on one database never double-fire', async () => {
  const a = scheduler({ instance: 'gw-a' });
  const b = scheduler({ instance: 'gw-b' });
  const job = a.add({ every: '1m', message: 'tick' }, 'device:owner');
  a.start();
  b.start();
  await clock.advance(10 * 60_000);
  // and both racing on the same due moment explicitly
  await clock.advance(60_000 - 1);
  const both = [...a.tick(), ...b.tick()];
  assert.equal(both.filter((c) => c.kind === 'run').length, 0);
  await clock.advance(1);
  await a.idle();
  await b.idle();
  const runs = a.runs(job.id);
  assert.equal(turns.length, 11);
  assert.equal(new Set(runs.map((r) => r.scheduledFor)).size, runs.length);
  assert.ok(runs.some((r) => r.instance === 'gw-a') || runs.some((r) => r.instance === 'gw-b'));
});

test('a job never overlaps itself: a due run while the last is still going is skipped', async () => {
  let release!: () => void;
  const s = scheduler({
    runTurn: (req) => {
      turns.push(req);
      return new Promise((r) => (release = () => r({ text: '' })));
    },
  });
  const job = s.add({ every: '1m', message: 'slow' }, 'device:owner');
  s.start();
  await clock.advance(60_000);
  await clock.advance(60_000);
  assert.equal(turns.length, 1);
  assert.deepEqual(s.runs(job.id).map((r) => [r.status, r.reason]), [['running', null], ['skipped', 'overlap']]);
  release();
  await s.idle();
  await clock.advance(60_000);
  assert.equal(turns.length, 2);
  release();
  await s.idle();
});

test('cron run ID runs a job now and refuses while it is running', async () => {
  const s = scheduler();
  const job = s.add({ cron: '0 0 1 1 *', message: 'yearly' }, 'device:owner');
  const run = await s.runNow(job.id, 'device:owner');
  assert.equal(run.status, 'ok');
  assert.equal(turns.length, 1);
  assert.equal(s.get(job.id)!.nextRunAt, Date.parse('2026-01-01T00:00:00Z'));
  await assert.rejects(s.runNow('cron_nope', 'x'), /no cron job/);
});

test('a failing turn is recorded as an error and the job keeps its schedule', async () => {
  const s = scheduler({ runTurn: async () => { throw new Error('provider down'); } });
  const job = s.add({ every: '1h', message: 'x', deliver: 'telegram:1' }, 'device:owner');
  s.start();
  await clock.advance(3_600_000);
  await s.idle();
  assert.equal(s.runs(job.id)[0].status, 'error');
  assert.equal(s.runs(job.id)[0].reason, 'provider down');
  assert.equal(delivered.length, 0);
  assert.equal(s.get(job.id)!.nextRunAt, Date.parse('2025-01-06T07:00:00Z'));
});

test('bad schedules are refused with the reason and the pointer of the parameter at fault', () => {
  const s = scheduler();
  const bad: [object, RegExp, string][] = [
    [{ cron: '0 0 7 * * 1-5', message: 'm' }, /exactly five fields/, '/params/cron'],
    [{ cron: '0 7 * *', message: 'm' }, /exactly five fields/, '/params/cron'],
    [{ cron: '61 7 * * *', message: 'm' }, /not valid/, '/params/cron'],
    [{ cron: '0 7 * * *', tz: 'Mars/Olympus', message: 'm' }, /unknown time zone/, '/params/tz'],
    [{ at: '2024-01-01T00:00:00Z', message: 'm' }, /in the past/, '/params/at'],
    [{ at: 'tomorrow-ish', message: 'm' }, /not a date-time/, '/params/at'],
    [{ every: '5s', message: 'm' }, /at least 60s/, '/params/every'],
    [{ every: 'often', message: 'm' }, /not a duration/, '/params/every'],
    [{ every: '1h', cron: '* * * * *', message: 'm' }, /exactly one of/, '/params'],
    [{ every: '1h', message: '' }, /needs a message/, '/params/message'],
    [{ every: '1h', message: 'm', missed: 'sometimes' }, /missed must be/, '/params/missed'],
  ];
  for (const [spec, re, pointer] of bad) {
    assert.throws(() => s.add(spec as never, 'x'), (err: Error & { code?: string; details?: { pointer?: string } }) => err.code === 'INVALID_REQUEST' && re.test(err.message) && err.details?.pointer === pointer, JSON.stringify(spec));
  }
  assert.equal(s.list().length, 0);
});

test('adding, running and removing jobs is audited', async () => {
  const s = scheduler();
  const job = s.add({ every: '1h', message: 'x' }, 'device:owner');
  await s.runNow(job.id, 'device:owner');
  s.remove(job.id, 'device:owner');
  const audit = createAuditLog(dbs[0]);
  assert.deepEqual(audit.list({}).filter((r) => r.target === job.id).map((r) => r.action), ['cron.add', 'cron.run', 'cron.fired', 'cron.remove']);
});
