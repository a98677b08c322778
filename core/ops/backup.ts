import Database from 'better-sqlite3';
import { createReadStream, createWriteStream, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, openSync, writeSync, closeSync, fsyncSync, chmodSync, unlinkSync } from 'node:fs';
import { join, posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip, createGunzip } from 'node:zlib';
import type { HomePaths } from '../home.ts';
import { homePaths, ensureHome } from '../home.ts';
import { acquireLock, readRunInfo } from '../gateway/lock.ts';
import { integrityCheck, openDb } from '../store/db.ts';
import { openAuditLog, verifyAuditLog } from '../audit.ts';
import { readTar, tarEnd, tarHeader, tarPadding, TarError } from './tar.ts';
import { VERSION } from '../version.ts';

// A backup is one gzipped tar of the state directory (config.md): a manifest,
// the signed audit head, a consistent snapshot of the SQLite database taken with
// SQLite's online backup API (safe while the gateway writes), and the files
// below. logs/ and run/ are left out: they describe a process, not the state.

export const MANIFEST_NAME = 'carapace-backup.json';
const FILES = ['config.json', 'secrets.enc'] as const;
const TREES = ['identity', 'trust', 'plugins', 'workspace', 'agents'] as const;
const DB_NAME = 'carapace.db';
const HEAD_NAME = 'audit-head.json';
/** Every top-level name an archive may hold; anything else is refused on restore. */
const ALLOWED_TOP = new Set<string>([MANIFEST_NAME, DB_NAME, HEAD_NAME, ...FILES, ...TREES]);

export class BackupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackupError';
  }
}

export interface BackupManifest {
  format: 1;
  carapace: string;
  createdAt: number;
  entries: number;
}

export interface BackupResult {
  file: string;
  entries: number;
  bytes: number;
  skipped: string[];
}

interface SourceEntry {
  name: string;
  type: 'file' | 'dir';
  path: string;
}

/** Regular files and directories under a tree; symlinks and special files are reported, never followed. */
function walk(root: string, rel: string, out: SourceEntry[], skipped: string[]): void {
  const abs = join(root, rel);
  const st = lstatSync(abs, { throwIfNoEntry: false });
  if (!st) return;
  if (st.isDirectory()) {
    out.push({ name: rel, type: 'dir', path: abs });
    for (const child of readdirSync(abs).sort()) walk(root, posix.join(rel, child), out, skipped);
  } else if (st.isFile()) out.push({ name: rel, type: 'file', path: abs });
  else skipped.push(rel);
}

/**
 * Snapshot the home into `out` (mode 0600: it holds the keys). The audit head is
 * read before the database snapshot, so it never names a row the snapshot lacks.
 */
export async function createBackup(paths: HomePaths, out: string, now = Date.now()): Promise<BackupResult> {
  if (!existsSync(paths.root)) throw new BackupError(`${paths.root} does not exist: nothing to back up`);
  if (existsSync(out)) throw new BackupError(`${out} already exists; choose another --out`);
  const head = existsSync(paths.auditHead) ? readFileSync(paths.auditHead) : null;
  mkdirSync(paths.runDir, { recursive: true, mode: 0o700 });
  const snapshot = join(paths.runDir, `backup-${process.pid}-${now}.db`);
  const tmpOut = `${out}.${process.pid}.partial`;
  try {
    if (existsSync(paths.db)) {
      const src = new Database(paths.db, { readonly: true, fileMustExist: true });
      try {
        src.pragma('busy_timeout = 5000');
        // One step copies every page inside one read transaction: a consistent
        // snapshot that a steady stream of writers cannot keep restarting.
        await src.backup(snapshot, { progress: () => 0x7fffffff });
      } finally {
        src.close();
      }
      chmodSync(snapshot, 0o600);
    }
    const skipped: string[] = [];
    const entries: SourceEntry[] = [];
    for (const f of FILES) if (existsSync(join(paths.root, f))) entries.push({ name: f, type: 'file', path: join(paths.root, f) });
    for (const t of TREES) walk(paths.root, t, entries, skipped);
    const manifest: BackupManifest = { format: 1, carapace: VERSION, createdAt: now, entries: entries.length + (head ? 1 : 0) + (existsSync(snapshot) ? 1 : 0) };

    async function* stream(): AsyncGenerator<Buffer> {
      const file = (name: string, data: Buffer) => [tarHeader({ name, type: 'file', mode: 0o600, size: data.length, mtime: now }), data, tarPadding(data.length)];
      yield* file(MANIFEST_NAME, Buffer.from(JSON.stringify(manifest) + '\n'));
      if (head) yield* file(HEAD_NAME, head);
      if (existsSync(snapshot)) {
        const size = statSync(snapshot).size;
        yield tarHeader({ name: DB_NAME, type: 'file', mode: 0o600, size, mtime: now });
        for await (const chunk of createReadStream(snapshot)) yield chunk as Buffer;
        yield tarPadding(size);
      }
      for (const e of entries) {
        if (e.type === 'dir') yield tarHeader({ name: e.name, type: 'dir', mode: 0o700, size: 0, mtime: now });
        // Whole-file reads: a file that changes while we pack is taken as one version, never torn.
        else yield* file(e.name, readFileSync(e.path));
      }
      yield tarEnd();
    }

    await pipeline(Readable.from(stream()), createGzip(), createWriteStream(tmpOut, { flags: 'wx', mode: 0o600 }));
    const fd = openSync(tmpOut, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (existsSync(out)) throw new BackupError(`${out} appeared while the backup was written; not overwriting it`);
    renameSync(tmpOut, out);
    return { file: out, entries: manifest.entries, bytes: statSync(out).size, skipped };
  } finally {
    for (const suffix of ['', '-journal', '-wal', '-shm']) rmSync(snapshot + suffix, { force: true });
    rmSync(tmpOut, { force: true });
  }
}

/** Refuse any archive name that could land outside the home or isn't ours. */
export function checkEntryName(name: string): string | null {
  if (name.length === 0) return 'an empty path';
  if (name.includes('\0') || name.includes('\\')) return `"${name}" contains a NUL or a backslash`;
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) return `"${name}" is an absolute path`;
  const parts = name.split('/');
  if (parts.some((p) => p === '..')) return `"${name}" climbs out with ".."`;
  if (parts.some((p) => p === '' || p === '.')) return `"${name}" is not a normalised path`;
  if (!ALLOWED_TOP.has(parts[0])) return `"${name}" is not part of a Carapace state directory`;
  return null;
}

export interface RestoreResult {
  home: string;
  entries: number;
  manifest: BackupManifest;
  auditRows: number;
}

function hasState(paths: HomePaths): boolean {
  if ([paths.config, paths.db, paths.secrets].some((p) => existsSync(p))) return true;
  return existsSync(paths.identityDir) && readdirSync(paths.identityDir).length > 0;
}

/**
 * Restore an archive into a home: refused while a gateway runs there (and the
 * home's lock is held throughout, so none can start), refused over existing state
 * unless `force`. Entries are unpacked into a private staging folder, checked
 * (database integrity, audit chain), and only then moved into place, so a bad
 * archive changes nothing. Modes are the home's own: 0700 folders, 0600 files.
 */
export async function restoreBackup(file: string, home: string, opts: { force?: boolean } = {}): Promise<RestoreResult> {
  const paths = homePaths(home);
  if (!existsSync(file)) throw new BackupError(`${file} does not exist`);
  const running = readRunInfo(paths);
  if (running) throw new BackupError(`a gateway (pid ${running.pid}) is running on ${paths.root}; stop it before restoring`);
  if (hasState(paths) && !opts.force) throw new BackupError(`${paths.root} already holds state; restore into an empty home, or pass --force to replace it`);
  ensureHome(paths);
  const release = acquireLock(paths); // refuses, naming the pid, if a gateway is starting right now
  const staging = join(paths.root, `.restore-${process.pid}`);
  try {
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging, { mode: 0o700 });
    let manifest: BackupManifest | null = null;
    let count = 0;
    const gunzip = createGunzip();
    const input = createReadStream(file).pipe(gunzip);
    input.on('error', () => {}); // surfaced through the iterator below
    try {
      await readTar(input as AsyncIterable<Buffer>, async (h, body) => {
        const bad = checkEntryName(h.name);
        if (bad) throw new BackupError(`refusing the archive: ${bad}`);
        if (count === 0 && h.name !== MANIFEST_NAME) throw new BackupError(`not a Carapace backup (the first entry is ${h.name}, not ${MANIFEST_NAME})`);
        count++;
        const dest = join(staging, ...h.name.split('/'));
        if (h.type === 'dir') {
          mkdirSync(dest, { recursive: true, mode: 0o700 });
          return;
        }
        if (h.name === MANIFEST_NAME) {
          const chunks: Buffer[] = [];
          for await (const c of body) chunks.push(c);
          manifest = parseManifest(Buffer.concat(chunks));
          return;
        }
        mkdirSync(join(dest, '..'), { recursive: true, mode: 0o700 });
        // 'wx': a second entry with the same name is refused, never silently merged.
        const fd = openSync(dest, 'wx', 0o600);
        try {
          for await (const c of body) writeSync(fd, c);
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
      });
    } catch (err) {
      if (err instanceof TarError) throw new BackupError(`refusing the archive: ${err.message}`);
      if ((err as NodeJS.ErrnoException).code === 'Z_DATA_ERROR' || (err as NodeJS.ErrnoException).code === 'Z_BUF_ERROR') throw new BackupError(`${file} is not a gzipped backup (or is corrupt)`);
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new BackupError('refusing the archive: it holds the same path twice');
      throw err;
    }
    if (!manifest) throw new BackupError('not a Carapace backup (no manifest)');
    fixModes(staging);

    const stagedPaths = homePaths(staging);
    let auditRows = 0;
    if (existsSync(stagedPaths.db)) {
      const db = openDb(stagedPaths.db, { readonly: true });
      try {
        const integrity = integrityCheck(db);
        if (integrity !== 'ok') throw new BackupError(`the archived database fails integrity_check: ${integrity}`);
        const verdict = verifyAuditLog(db, stagedPaths);
        if (!verdict.ok) throw new BackupError(`the archived audit log does not verify (row ${verdict.brokenAt}: ${verdict.reason})`);
        auditRows = verdict.rows;
      } finally {
        db.close();
      }
    }

    // Swap in: the old database's -wal/-shm must go with it, or SQLite would replay them onto the restored file.
    for (const suffix of ['-wal', '-shm', '-journal']) rmSync(paths.db + suffix, { force: true });
    for (const name of readdirSync(staging)) {
      // (the manifest stays behind, as do the -shm/-wal of the integrity check)
      if (name === MANIFEST_NAME || !ALLOWED_TOP.has(name)) continue;
      const target = join(paths.root, name);
      rmSync(target, { recursive: true, force: true });
      renameSync(join(staging, name), target);
    }
    if (existsSync(paths.db)) {
      const db = openDb(paths.db);
      try {
        openAuditLog(db, paths).append({ actor: 'cli:owner', action: 'backup.restore', target: file, data: { createdAt: (manifest as BackupManifest).createdAt, entries: count } });
        auditRows++;
      } finally {
        db.close();
      }
    }
    return { home: paths.root, entries: count, manifest, auditRows };
  } finally {
    rmSync(staging, { recursive: true, force: true });
    release();
  }
}

function parseManifest(data: Buffer): BackupManifest {
  let m: Partial<BackupManifest>;
  try {
    m = JSON.parse(data.toString('utf8')) as Partial<BackupManifest>;
  } catch {
    throw new BackupError('the backup manifest is not JSON');
  }
  if (m.format !== 1) throw new BackupError(`unsupported backup format ${JSON.stringify(m.format)} (this Carapace reads format 1)`);
  return m as BackupManifest;
}

function fixModes(dir: string): void {
  chmodSync(dir, 0o700);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) fixModes(p);
    else if (entry.isFile()) chmodSync(p, 0o600);
    else unlinkSync(p); // nothing but files and folders is ever unpacked; defence in depth
  }
}
