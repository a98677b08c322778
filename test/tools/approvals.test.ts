import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable, Readable } from 'node:stream';
import { openDb, type Db } from '../../core/store/db.ts';
import { createAuditLog, type AuditLog } from '../../core/audit.ts';
import { createApprovals, type Approvals } from '../../core/approvals/approvals.ts';
import { runWithApproval } from '../../core/approvals/gate.ts';
import { registerApprovalMethods } from '../../core/approvals/methods.ts';
import { makeApprovalsVerb } from '../../core/cli/verbs/approvals.ts';
import { homePaths } from '../../core/home.ts';
import type { CliIO } from '../../core/cli/main.ts';
import { CarapaceError } from '../../core/errors.ts';
import { createExecTool } from '../../plugins/tools/exec/index.ts';
import { probeSandbox } from '../../plugins/tools/exec/sandbox.ts';
import { FakeClock, settle } from '../helpers/fake-clock.ts';
import { TestMethods, RecordingFanout } from '../helpers/methods.ts';

let base: string;
let workspace: string;
let db: Db;
let audit: AuditLog;
let clock: FakeClock;
let fanout: RecordingFanout;
let approvals: Approvals;

beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'carapace-approvals-'));
  workspace = join(base, 'workspace');
  mkdirSync(workspace);
  db = openDb(join(base, 'carapace.db'));
  clock = new FakeClock();
  audit = createAuditLog(db, { now: () => clock.now() });
  fanout = new RecordingFanout();
  approvals = createApprovals({ db, audit, timers: clock, events: fanout, defaultTimeoutMs: 60_000 });
});
afterEach(() => {
  approvals.close();
  db.close();
  rmSync(base, { recursive: true, force: true });
});

const call = { tool: 'exec', input: { argv: ['touch', 'approved.txt'] }, agentId: 'main', sessionKey: 'agent:main:test' };
const sandbox = await probeSandbox();
const skipExec = sandbox.ok ? false : `bubblewrap unavailable: ${sandbox.reason}`;

function execRun() {
  const tool = createExecTool({ workspace, hide: [], config: () => ({}) });
  return () => tool.run(call.input, { agentId: 'main', sessionKey: call.sessionKey });
}

test('a call needing approval waits, then runs once approved', { skip: skipExec }, async () => {
  const result = runWithApproval(approvals, call, execRun());
  await settle();
  assert.equal(existsSync(join(workspace, 'approved.txt')), false, 'must not run before the decision');
  const [pending] = approvals.list({ status: 'pending' });
  assert.equal(pending.tool, 'exec');
  approvals.resolve(pending.id, 'approved', 'device:owner');
  const r = await result;
  assert.equal(r.isError, false, r.content);
  assert.equal(existsSync(join(workspace, 'approved.txt')), true);
});

test('a denied call never runs', { skip: skipExec }, async () => {
  const result = runWithApproval(approvals, call, execRun());
  await settle();
  approvals.resolve(approvals.list()[0].id, 'denied', 'device:owner');
  const r = await result;
  assert.equal(r.isError, true);
  assert.match(r.content, /denied/);
  assert.equal(existsSync(join(workspace, 'approved.txt')), false);
});

test('an approval nobody answers times out and the call never runs', { skip: skipExec }, async () => {
  const result = runWithApproval(approvals, call, execRun(), { timeoutMs: 30_000 });
  await clock.advance(29_999);
  assert.equal(approvals.list()[0].status, 'pending');
  await clock.advance(1);
  const r = await result;
  assert.match(r.content, /timed out/);
  assert.equal(approvals.list()[0].status, 'timeout');
  assert.equal(existsSync(join(workspace, 'approved.txt')), false);
});

test('an approval request is broadcast as approval.requested to write-scoped operators', async () => {
  void approvals.request(call);
  const ev = fanout.events.find((e) => e.event === 'approval.requested');
  assert.ok(ev);
  assert.equal(ev.scope, 'operator.write');
  assert.equal((ev.payload as { tool: string }).tool, 'exec');
  assert.equal((ev.payload as { id: string }).id, approvals.list()[0].id);
});

test('every request and decision is in the audit log', async () => {
  const d = approvals.request(call);
  const id = approvals.list()[0].id;
  approvals.resolve(id, 'approved', 'device:owner');
  assert.equal(await d, 'approved');
  const rows = audit.list().filter((r) => r.target === id);
  assert.deepEqual(rows.map((r) => r.action), ['approval.requested', 'approval.approved']);
  assert.equal(rows[1].actor, 'device:owner');
  assert.equal(audit.verify().ok, true);
});

test('deciding twice is a CONFLICT and an unknown id is NOT_FOUND', async () => {
  void approvals.request(call);
  const id = approvals.list()[0].id;
  approvals.resolve(id, 'denied', 'device:owner');
  assert.throws(() => approvals.resolve(id, 'approved', 'device:owner'), (e: unknown) => e instanceof CarapaceError && e.code === 'CONFLICT');
  assert.throws(() => approvals.resolve('apr_nope', 'approved', 'x'), (e: unknown) => e instanceof CarapaceError && e.code === 'NOT_FOUND');
});

test('a request still pending when the gateway restarts is denied, not left approvable', async () => {
  void approvals.request(call);
  const id = approvals.list()[0].id;
  db.close();
  db = openDb(join(base, 'carapace.db'));
  audit = createAuditLog(db, { now: () => clock.now() });
  approvals = createApprovals({ db, audit, timers: clock });
  const rec = approvals.get(id)!;
  assert.equal(rec.status, 'denied');
  assert.equal(rec.decidedBy, 'kernel:restart');
  assert.throws(() => approvals.resolve(id, 'approved', 'device:owner'), /already decided/);
});

test('approvals.list and approvals.resolve work through a method registry with the caller as decider', async () => {
  const methods = new TestMethods();
  registerApprovalMethods(methods, approvals);
  const d = approvals.request(call);
  const listed = (await methods.call('approvals.list', {})) as { approvals: { id: string }[] };
  assert.equal(listed.approvals.length, 1);
  await methods.call('approvals.resolve', { id: listed.approvals[0].id, decision: 'approved', idempotencyKey: 'k1' }, { deviceId: 'dev1' });
  assert.equal(await d, 'approved');
  assert.equal(approvals.get(listed.approvals[0].id)!.decidedBy, 'device:dev1');
  await assert.rejects(methods.call('approvals.list', {}, { scopes: ['operator.read'] }), /missing scope/);
});

function io(): { io: CliIO; out: () => string } {
  let out = '';
  const stdout = new Writable({ write(c, _e, cb) { out += String(c); cb(); } });
  const home = join(base, 'home');
  return {
    out: () => out,
    io: {
      home, paths: homePaths(home), json: false, stdout, stderr: stdout, stdin: Readable.from([]), isTTY: false,
      say: (t) => { out += t + '\n'; },
      emit: (v) => { out += JSON.stringify(v) + '\n'; },
    },
  };
}

test('carapace approvals list and approve talk to the gateway methods', async () => {
  const methods = new TestMethods();
  registerApprovalMethods(methods, approvals);
  const verb = makeApprovalsVerb(async () => ({ call: (m, p) => methods.call(m, p), close: () => {} }));
  const d = approvals.request(call);
  const a = io();
  await verb.run(a.io, { positionals: ['list'], values: {} });
  const id = approvals.list()[0].id;
  assert.match(a.out(), new RegExp(`${id}\\s+pending\\s+exec`));
  const b = io();
  await verb.run(b.io, { positionals: ['approve', id], values: {} });
  assert.match(b.out(), /approved/);
  assert.equal(await d, 'approved');
  await assert.rejects(verb.run(io().io, { positionals: ['approve'], values: {} }), /needs the approval ID/);
});
