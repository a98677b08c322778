import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { readFileSync, writeFileSync, unlinkSync } from 'node:fs';
import { tempHome, type TempHome } from '../helpers/home.ts';
import { runCli } from '../helpers/cli.ts';
import { spawnGateway } from '../helpers/gateway.ts';
import { ensureHome } from '../../core/home.ts';
import { openDb } from '../../core/store/db.ts';
import { openAuditLog } from '../../core/audit.ts';
import { generateKeyPair, sign } from '../../core/identity/keys.ts';

/** A home whose audit log has `n` rows, written the way the gateway writes them. */
function homeWithLog(t: { after(fn: () => void): void }, n: number): TempHome {
  const home = tempHome('audit');
  t.after(home.cleanup);
  ensureHome(home.paths);
  const db = openDb(home.paths.db);
  const audit = openAuditLog(db, home.paths);
  for (let i = 1; i <= n; i++) audit.append({ actor: 'test', action: i % 2 ? 'config.set' : 'secret.set', sessionKey: i === 3 ? 'agent:main:x' : null, data: { i } });
  db.close();
  return home;
}

function raw(home: TempHome, sql: string): void {
  const db = new Database(home.paths.db);
  try {
    db.prepare(sql).run();
  } finally {
    db.close();
  }
}

async function verify(home: TempHome) {
  const res = await runCli(['audit', 'verify', '--json'], { home: home.dir });
  return { code: res.code, verdict: JSON.parse(res.stdout) as { ok: boolean; rows: number; brokenAt?: number; reason?: string; anchoredSeq?: number }, stderr: res.stderr };
}

test('audit verify passes on a real gateway log, read-only beside the running gateway', async (t) => {
  const home = tempHome('audit');
  t.after(home.cleanup);
  await runCli(['config', 'set', 'logging.level', 'warn'], { home: home.dir });
  const gw = await spawnGateway(home.dir);
  t.after(() => gw.stop());
  await runCli(['config', 'set', 'gateway.maxPayload', '65536'], { home: home.dir });
  const live = await verify(home);
  assert.equal(live.code, 0, live.stderr);
  assert.equal(live.verdict.ok, true);
  assert.ok(live.verdict.rows >= 3, 'config.set, gateway.start, config.set');
  assert.equal(live.verdict.anchoredSeq, live.verdict.rows);
  await gw.stop();
  const after = await verify(home);
  assert.equal(after.verdict.ok, true, after.stderr);
  assert.equal(after.verdict.anchoredSeq, after.verdict.rows);
  const last = JSON.parse((await runCli(['audit', '--limit', '1', '--json'], { home: home.dir })).stdout);
  assert.equal(last.entries[0].action, 'gateway.stop', 'the stop was appended and anchored');
});

test('audit verify fails on a row edited in the database, naming the row', async (t) => {
  const home = homeWithLog(t, 6);
  raw(home, `UPDATE audit SET data = '{"i":99}' WHERE seq = 4`);
  const { code, verdict, stderr } = await verify(home);
  assert.equal(code, 1);
  assert.equal(verdict.ok, false);
  assert.equal(verdict.brokenAt, 4);
  assert.match(stderr, /TAMPERED at row 4/);
});

test('audit verify fails on a row deleted mid-chain', async (t) => {
  const home = homeWithLog(t, 6);
  raw(home, 'DELETE FROM audit WHERE seq = 3');
  const { code, verdict } = await verify(home);
  assert.equal(code, 1);
  assert.equal(verdict.brokenAt, 4);
  assert.match(verdict.reason!, /row 3 is missing/);
});

test('audit verify detects the newest rows being deleted, through the signed head', async (t) => {
  const home = homeWithLog(t, 6);
  raw(home, 'DELETE FROM audit WHERE seq > 4');
  const { code, verdict } = await verify(home);
  assert.equal(code, 1);
  assert.match(verdict.reason!, /newest rows were removed: the signed head is row 6 but the log ends at row 4/);
});

test('audit verify detects every row being deleted', async (t) => {
  const home = homeWithLog(t, 3);
  raw(home, 'DELETE FROM audit');
  const { code, verdict } = await verify(home);
  assert.equal(code, 1);
  assert.match(verdict.reason!, /newest rows were removed/);
});

test('audit verify refuses a truncated log whose head was re-signed with another key', async (t) => {
  const home = homeWithLog(t, 5);
  raw(home, 'DELETE FROM audit WHERE seq > 3');
  const db = new Database(home.paths.db, { readonly: true });
  const row3 = db.prepare('SELECT hash FROM audit WHERE seq = 3').get() as { hash: string };
  db.close();
  const head = JSON.parse(readFileSync(home.paths.auditHead, 'utf8'));
  const forger = generateKeyPair();
  writeFileSync(home.paths.auditHead, JSON.stringify({ ...head, seq: 3, hash: row3.hash, sig: sign(`carapace-audit-head:v1:3:${row3.hash}`, forger) }));
  const { code, verdict } = await verify(home);
  assert.equal(code, 1);
  assert.match(verdict.reason!, /not signed by this gateway key/);
});

test('audit verify fails when the head file of a non-empty log is deleted', async (t) => {
  const home = homeWithLog(t, 2);
  unlinkSync(home.paths.auditHead);
  const { code, verdict } = await verify(home);
  assert.equal(code, 1);
  assert.match(verdict.reason!, /head file .* is missing/);
});

test('audit lists entries filtered by session and action, and --since rejects a non-date', async (t) => {
  const home = homeWithLog(t, 6);
  const bySession = JSON.parse((await runCli(['audit', '--session', 'agent:main:x', '--json'], { home: home.dir })).stdout);
  assert.deepEqual(bySession.entries.map((e: { seq: number }) => e.seq), [3]);
  const byAction = JSON.parse((await runCli(['audit', '--action', 'secret.set', '--since', '1h', '--json'], { home: home.dir })).stdout);
  assert.deepEqual(byAction.entries.map((e: { seq: number }) => e.seq), [2, 4, 6]);
  const future = JSON.parse((await runCli(['audit', '--since', '2999-01-01', '--json'], { home: home.dir })).stdout);
  assert.deepEqual(future.entries, []);
  const bad = await runCli(['audit', '--since', 'yesterday'], { home: home.dir });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--since "yesterday" is not a date/);
});
