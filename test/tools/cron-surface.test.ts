import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable, Readable } from 'node:stream';
import { openDb, type Db } from '../../core/store/db.ts';
import { createAuditLog } from '../../core/audit.ts';
import { createScheduler, type Scheduler } from '../../core/scheduler/scheduler.ts';
import { registerCronMethods } from '../../core/scheduler/methods.ts';
import { cronCapability } from '../../core/scheduler/capability.ts';
import { makeCronVerb } from '../../core/cli/verbs/cron.ts';
import { homePaths } from '../../core/home.ts';
import type { CliIO } from '../../core/cli/main.ts';
import { tools } from '../../plugins/tools/cron/index.js';
import { FakeClock } from '../helpers/fake-clock.ts';
import { TestMethods } from '../helpers/methods.ts';

let base: string;
let db: Db;
let clock: FakeClock;
let scheduler: Scheduler;
let methods: TestMethods;
let turns: number;

beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'carapace-cron-surface-'));
  db = openDb(join(base, 'carapace.db'));
  clock = new FakeClock('2025-01-06T05:00:00Z');
  turns = 0;
  scheduler = createScheduler({
    db, timers: clock, audit: createAuditLog(db),
    runTurn: async ({ message }) => {
      turns++;
      if (message === 'boom') throw new Error('the model is down');
      return { text: 'ok' };
    },
    deliver: async () => {},
    knownAgent: (id) => id !== 'ghost',
  });
  methods = new TestMethods();
  registerCronMethods(methods, scheduler);
});
afterEach(async () => {
  await scheduler.stop();
  db.close();
  rmSync(base, { recursive: true, force: true });
});

function io(): { io: CliIO; out: () => string } {
  let out = '';
  const w = new Writable({ write(c, _e, cb) { out += String(c); cb(); } });
  const home = join(base, 'home');
  return {
    out: () => out,
    io: { home, paths: homePaths(home), json: false, stdout: w, stderr: w, stdin: Readable.from([]), isTTY: false,
      say: (t) => { out += t + '\n'; }, emit: (v) => { out += JSON.stringify(v) + '\n'; } },
  };
}

const verb = () => makeCronVerb(async () => ({ call: (m, p) => methods.call(m, p), close: () => {} }));

test('carapace cron add --cron --tz --message --deliver creates a job through cron.add', async () => {
  const a = io();
  await verb().run(a.io, { positionals: ['add'], values: { cron: '0 7 * * 1-5', tz: 'Europe/Berlin', message: 'brief', deliver: 'telegram:99' } });
  assert.match(a.out(), /^added cron_[0-9a-f]+: cron "0 7 \* \* 1-5" Europe\/Berlin, next 2025-01-06T06:00:00.000Z/);
  const [job] = scheduler.list();
  assert.equal(job.deliver, 'telegram:99');
  assert.equal(job.createdBy, 'device:owner-device');
});

test('carapace cron list, run ID and remove ID', async () => {
  const job = scheduler.add({ every: '2h', message: 'poll' }, 'x');
  const l = io();
  await verb().run(l.io, { positionals: ['list'], values: {} });
  assert.match(l.out(), new RegExp(`${job.id}  every 120m  next 2025-01-06T07:00:00.000Z`));
  const r = io();
  await verb().run(r.io, { positionals: ['run', job.id], values: {} });
  assert.match(r.out(), /ran cron_\w+: ok/);
  assert.equal(turns, 1);
  await verb().run(io().io, { positionals: ['remove', job.id], values: {} });
  assert.deepEqual(scheduler.list(), []);
});

test('carapace cron run of a job that fails exits 1 with the reason; a job for an agent that does not exist is refused', async () => {
  const job = scheduler.add({ every: '2h', message: 'boom' }, 'x');
  const r = io();
  await assert.rejects(verb().run(r.io, { positionals: ['run', job.id], values: {} }), (err: Error & { exitCode?: number }) => err.exitCode === 1 && new RegExp(`job ${job.id} failed: .*the model is down`).test(err.message));
  assert.match(r.out(), /ran cron_\w+: error/);
  await assert.rejects(methods.call('cron.add', { every: '1h', message: 'm', agentId: 'ghost', idempotencyKey: 'k' }), (err: Error & { code?: string; details?: { pointer?: string } }) => err.code === 'NOT_FOUND' && err.details?.pointer === '/params/agentId' && /no agent "ghost"/.test(err.message));
  assert.equal(scheduler.list().length, 1);
});

test('carapace cron add refuses a usage error before reaching the gateway', async () => {
  let called = false;
  const v = makeCronVerb(async () => ((called = true), { call: async () => ({}), close: () => {} }));
  await assert.rejects(v.run(io().io, { positionals: ['add'], values: { message: 'x' } }), /exactly one of --cron, --at, --every/);
  await assert.rejects(v.run(io().io, { positionals: ['add'], values: { every: '1h' } }), /needs --message/);
  await assert.rejects(v.run(io().io, { positionals: ['remove'], values: {} }), /needs the job ID/);
  assert.equal(called, false);
});

test('cron methods check scopes and params', async () => {
  await assert.rejects(methods.call('cron.add', { every: '1h', message: 'm' }, { scopes: ['operator.read'] }), /missing scope/);
  await assert.rejects(methods.call('cron.add', { every: '1h', message: 'm', shell: 'rm' }), /invalid params/);
  await assert.rejects(methods.call('cron.add', { every: '1h', message: 'm', deliver: 'nocolon' }), /invalid params/);
  await assert.rejects(methods.call('cron.remove', { id: 'cron_missing' }), /no cron job/);
  assert.deepEqual(await methods.call('cron.list', {}, { scopes: ['operator.read'] }), { jobs: [] });
});

test('the cron tool lets an agent schedule, list and remove only its own jobs', async () => {
  const other = scheduler.add({ cron: '0 0 1 1 *', message: 'not yours', agentId: 'other' }, 'x');
  (globalThis as { carapace?: unknown }).carapace = { cron: cronCapability(scheduler, 'cron') };
  const [tool] = tools;
  const ctx = { agentId: 'main', sessionKey: 'agent:main:dm' };
  const added = await tool.run({ action: 'add', at: '2025-01-06T08:00:00Z', message: 'stand up', deliver: 'telegram:1' }, ctx);
  assert.match(added.content, /^scheduled cron_\w+: once at 2025-01-06T08:00:00.000Z/);
  const listed = await tool.run({ action: 'list' }, ctx);
  assert.doesNotMatch(listed.content, /not yours/);
  assert.match(listed.content, /stand up/);
  const removed = await tool.run({ action: 'remove', id: other.id }, ctx);
  assert.equal(removed.isError, true);
  assert.ok(scheduler.get(other.id));
  const bad = await tool.run({ action: 'add', cron: '* * * * * *', message: 'x' }, ctx);
  assert.match(bad.content, /exactly five fields/);
  await clock.set('2025-01-06T08:00:00Z');
  scheduler.tick();
  await scheduler.idle();
  assert.equal(turns, 1);
});
