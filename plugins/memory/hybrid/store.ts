// The memory index's one database file: chunks + FTS5 + a sqlite-vec vec0 table +
// an embedding cache + metadata. Derived data only: anything doubtful is rebuilt
// from the workspace rather than served. This module is the only writer of the file.
import Database from 'better-sqlite3';
import * as sqliteVec from 'sqlite-vec';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';

export type Db = Database.Database;

export const SCHEMA_VERSION = 1;

const MMAP_BYTES = 256 * 1024 * 1024;

// Statements the hot paths run on every query, prepared once per connection.
const statements = new WeakMap<Db, Map<string, Database.Statement>>();
function cached(db: Db, sql: string): Database.Statement {
  let m = statements.get(db);
  if (!m) statements.set(db, (m = new Map()));
  let st = m.get(sql);
  if (!st) m.set(sql, (st = db.prepare(sql)));
  return st;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- one row per indexed document: a workspace file (id = relative path) or a pushed doc (session transcript)
CREATE TABLE IF NOT EXISTS docs (
  id TEXT PRIMARY KEY, path TEXT NOT NULL, source TEXT NOT NULL, hash TEXT NOT NULL,
  mtime_ms INTEGER, size INTEGER, day INTEGER, body TEXT, indexed_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
  id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, path TEXT NOT NULL, source TEXT NOT NULL,
  start_line INTEGER NOT NULL, end_line INTEGER NOT NULL, heading TEXT NOT NULL, text TEXT NOT NULL,
  hash TEXT NOT NULL, day INTEGER, embedded INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE INDEX IF NOT EXISTS chunks_unembedded ON chunks(embedded) WHERE embedded = 0;
-- rowid = chunks.id; porter stemming so "deploying" finds "deployment"
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(heading, text, tokenize = 'porter unicode61');
-- vectors by (embedder id, chunk hash): a model switch back, a moved paragraph or a rebuild costs no API call
CREATE TABLE IF NOT EXISTS embed_cache (embedder TEXT NOT NULL, hash TEXT NOT NULL, vec BLOB NOT NULL, PRIMARY KEY (embedder, hash)) WITHOUT ROWID;
`;

export type OpenOutcome =
  | { kind: 'ok' }
  | { kind: 'created' }
  /** The file could not be read as a healthy index: deleted and recreated. */
  | { kind: 'recreated'; reason: string };

function loadVec(db: Db): void {
  sqliteVec.load(db);
}

function removeDbFiles(path: string): void {
  for (const p of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) rmSync(p, { force: true });
}

function configure(db: Db): void {
  db.pragma('journal_mode = WAL');
  // Derived data: a lost tail after power loss is caught by the completion marker and rebuilt.
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  // A vector query reads every vec0 chunk blob (100k × 128 floats = 51 MB). Through
  // the pager that is one pread syscall per 4 KiB page, ~30% of the query; mapped,
  // the pages are read in place. The mapped pages are the OS's file cache (shared,
  // reclaimable), not our heap. Capped: beyond it SQLite falls back to reads.
  db.pragma(`mmap_size = ${MMAP_BYTES}`);
  loadVec(db);
}

function healthProblem(db: Db): string | null {
  const check = db.pragma('quick_check', { simple: true });
  if (check !== 'ok') return `integrity check failed (${String(check).slice(0, 120)})`;
  const hasMeta = db.prepare("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").get();
  if (!hasMeta) {
    const tables = db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type='table'").get() as { n: number };
    return tables.n > 0 ? 'not a Carapace memory index (no meta table)' : null;
  }
  const v = db.prepare("SELECT value FROM meta WHERE key='schema_version'").get() as { value: string } | undefined;
  if (v && Number(v.value) !== SCHEMA_VERSION) return `schema version ${v.value}, this Carapace writes ${SCHEMA_VERSION}`;
  return null;
}

/**
 * Open (creating if needed) the index at `path`. A file that is not a database, fails
 * SQLite's quick_check or carries another schema version is deleted and recreated:
 * the index is a cache of the workspace, never the only copy of anything.
 */
export function openIndexDb(path: string): { db: Db; outcome: OpenOutcome } {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const existed = existsSync(path);
  let reason: string | null = null;
  if (existed) {
    let db: Db | null = null;
    try {
      db = new Database(path, { timeout: 5000 });
      configure(db);
      reason = healthProblem(db);
      if (!reason) {
        db.exec(SCHEMA);
        return { db, outcome: { kind: 'ok' } };
      }
    } catch (err) {
      reason = `unreadable (${(err as Error).message})`;
    }
    try {
      db?.close();
    } catch {
      // already unusable
    }
    removeDbFiles(path);
  }
  const db = new Database(path, { timeout: 5000 });
  configure(db);
  db.exec(SCHEMA);
  db.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)").run(String(SCHEMA_VERSION));
  return { db, outcome: reason ? { kind: 'recreated', reason } : { kind: 'created' } };
}

export function getMeta(db: Db, key: string): string | undefined {
  return (cached(db, 'SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined)?.value;
}

export function setMeta(db: Db, key: string, value: string | number | null): void {
  if (value === null) db.prepare('DELETE FROM meta WHERE key = ?').run(key);
  else db.prepare('INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)').run(key, String(value));
}

export function hasVecTable(db: Db): boolean {
  return Boolean(cached(db, "SELECT 1 FROM sqlite_master WHERE name='chunks_vec'").get());
}

export function createVecTable(db: Db, dims: number): void {
  if (!Number.isInteger(dims) || dims < 1 || dims > 8192) throw new Error(`refusing a vector table of ${dims} dimensions`);
  db.exec(`CREATE VIRTUAL TABLE IF NOT EXISTS chunks_vec USING vec0(embedding float[${dims}] distance_metric=cosine)`);
}

export function dropVecTable(db: Db): void {
  db.exec('DROP TABLE IF EXISTS chunks_vec');
}

/** Empty every index table, keeping the embedding cache (it is keyed by content, so still right). */
export function clearIndex(db: Db): void {
  db.transaction(() => {
    db.exec('DELETE FROM chunks; DELETE FROM docs; DELETE FROM chunks_fts;');
    dropVecTable(db);
    for (const k of ['state', 'builder_pid', 'embedder', 'dims', 'completed_at']) setMeta(db, k, null);
  })();
}

export function vecBlob(v: Float32Array): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

export function blobVec(b: Buffer): Float32Array {
  const copy = new Uint8Array(b.byteLength);
  copy.set(b);
  return new Float32Array(copy.buffer);
}
