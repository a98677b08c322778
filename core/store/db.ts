import Database from 'better-sqlite3';
import { migrations, type Migration } from './migrations.ts';

export type Db = Database.Database;

export class StoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreError';
  }
}

/**
 * Open the one SQLite database: WAL, synchronous=FULL (accepted messages and the
 * audit chain must survive power loss), foreign keys on, and every known migration applied.
 */
export function openDb(path: string, opts: { readonly?: boolean; migrate?: boolean } = {}): Db {
  const db = new Database(path, { readonly: opts.readonly ?? false, timeout: 5000 });
  try {
    if (!opts.readonly) {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
    }
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    if (opts.migrate !== false && !opts.readonly) migrate(db, migrations);
    else checkNotNewer(db, migrations);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

function appliedIds(db: Db): string[] {
  const has = db.prepare("SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_migrations'").get();
  if (!has) return [];
  return (db.prepare('SELECT id FROM schema_migrations ORDER BY seq').all() as { id: string }[]).map((r) => r.id);
}

function checkNotNewer(db: Db, known: readonly Migration[]): void {
  const knownIds = new Set(known.map((m) => m.id));
  const unknown = appliedIds(db).filter((id) => !knownIds.has(id));
  if (unknown.length > 0) {
    throw new StoreError(
      `the database was written by a newer Carapace (unknown migrations: ${unknown.join(', ')}); upgrade Carapace or restore a backup`,
    );
  }
}

/** Apply, in order and each in its own transaction, every migration not yet recorded. */
export function migrate(db: Db, list: readonly Migration[]): string[] {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, applied_at INTEGER NOT NULL)`);
  checkNotNewer(db, list);
  const done = new Set(appliedIds(db));
  const applied: string[] = [];
  const recorded = db.prepare('SELECT 1 FROM schema_migrations WHERE id = ?');
  for (const m of list) {
    if (done.has(m.id)) continue;
    // BEGIN IMMEDIATE: the write lock is held from the check on, so of two processes
    // opening a fresh home at once (two CLI verbs), one applies and the other skips.
    const ran = db.transaction(() => {
      if (recorded.get(m.id)) return false;
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (id, applied_at) VALUES (?, ?)').run(m.id, Date.now());
      return true;
    }).immediate();
    if (ran) applied.push(m.id);
  }
  return applied;
}

export function integrityCheck(db: Db): string {
  const rows = db.pragma('integrity_check') as { integrity_check: string }[];
  return rows.map((r) => r.integrity_check).join('; ');
}
