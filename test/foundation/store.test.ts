import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { tempHome } from '../helpers/home.ts';
import { openDb, migrate, StoreError } from '../../core/store/db.ts';
import { ensureHome } from '../../core/home.ts';
import { migrations } from '../../core/store/migrations.ts';
import { createAuditLog } from '../../core/audit.ts';
import { runCli } from '../helpers/cli.ts';

test('migrations apply once, in order, and are recorded by id', (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  ensureHome(home.paths);
  openDb(home.paths.db).close();
  const db = new Database(home.paths.db);
  t.after(() => db.close());
  const list = [
    { id: 't-1', sql: 'CREATE TABLE a (x INTEGER)' },
    { id: 't-2', sql: 'ALTER TABLE a ADD COLUMN y TEXT' },
  ];
  const withReal = [...migrations, ...list];
  assert.deepEqual(migrate(db, withReal), ['t-1', 't-2']);
  assert.deepEqual(migrate(db, withReal), []);
});

test('the store opens in WAL mode with synchronous=FULL', (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  ensureHome(home.paths);
  const db = openDb(home.paths.db);
  t.after(() => db.close());
  assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  assert.equal(db.pragma('synchronous', { simple: true }), 2, 'synchronous=FULL');
});

test('a failing migration rolls back entirely and is not recorded', (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  ensureHome(home.paths);
  const db = openDb(home.paths.db);
  t.after(() => db.close());
  assert.throws(() => migrate(db, [...migrations, { id: 'bad', sql: 'CREATE TABLE b (x); CREATE TABLE b (y);' }]));
  assert.equal(db.prepare("SELECT 1 FROM sqlite_master WHERE name='b'").get(), undefined);
  assert.equal(db.prepare("SELECT 1 FROM schema_migrations WHERE id='bad'").get(), undefined);
});

test('a database written by a newer Carapace is refused with a clear error, at start too', async (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  ensureHome(home.paths);
  openDb(home.paths.db).close();
  const raw = new Database(home.paths.db);
  raw.prepare('INSERT INTO schema_migrations (id, applied_at) VALUES (?, ?)').run('9999-from-the-future', Date.now());
  raw.close();
  assert.throws(() => openDb(home.paths.db), (err: unknown) => err instanceof StoreError && /newer Carapace/.test((err as Error).message));
  const res = await runCli(['start', '--port', '0'], { home: home.dir });
  assert.equal(res.code, 1);
  assert.match(res.stderr, /written by a newer Carapace \(unknown migrations: 9999-from-the-future\)/);
});

test('the audit chain verifies, and editing or deleting a row breaks it at that row', (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  ensureHome(home.paths);
  const db = openDb(home.paths.db);
  t.after(() => db.close());
  const audit = createAuditLog(db);
  for (let i = 0; i < 5; i++) audit.append({ actor: 'test', action: 'thing', data: { i } });
  assert.deepEqual(audit.verify(), { ok: true, rows: 5 });
  db.prepare("UPDATE audit SET data = '{\"i\":42}' WHERE seq = 3").run();
  const edited = audit.verify();
  assert.equal(edited.ok, false);
  assert.equal(!edited.ok && edited.brokenAt, 3);
});

test('audit entries never carry secret values or credential fields', (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  ensureHome(home.paths);
  const db = openDb(home.paths.db);
  t.after(() => db.close());
  const audit = createAuditLog(db, { secretValues: () => ['hunter2-secret-value'] });
  audit.append({ actor: 'test', action: 'x', data: { note: 'token is hunter2-secret-value', apiKey: 'abc123', nested: { password: 'pw' } } });
  const text = (db.prepare('SELECT data FROM audit').get() as { data: string }).data;
  assert.doesNotMatch(text, /hunter2-secret-value|abc123|"pw"/);
});
