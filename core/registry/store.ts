import Database from 'better-sqlite3';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { migrate, type Db } from '../store/db.ts';
import type { Migration } from '../store/migrations.ts';
import { writeFileAtomic } from '../home.ts';
import { compareSemver } from './semver.ts';

// The registry's own state: a SQLite file and content-addressed blobs under its
// data directory (not the gateway's carapace.db — a registry is a separate
// service that may run on another machine). This module is the one writer of
// every table below.

const REGISTRY_MIGRATIONS: readonly Migration[] = [
  {
    id: 'reg-0001-core',
    sql: `
    CREATE TABLE users (handle TEXT PRIMARY KEY, display_name TEXT, created_at INTEGER NOT NULL);
    CREATE TABLE tokens (id INTEGER PRIMARY KEY, user TEXT NOT NULL REFERENCES users(handle),
      token_hash TEXT NOT NULL UNIQUE, label TEXT, created_at INTEGER NOT NULL, revoked_at INTEGER);
    CREATE TABLE uploads (ticket TEXT PRIMARY KEY, user TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL,
      sha256 TEXT NOT NULL, content_type TEXT NOT NULL, created_at INTEGER NOT NULL, stored INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE skills (slug TEXT PRIMARY KEY, id TEXT NOT NULL, owner TEXT NOT NULL REFERENCES users(handle),
      display_name TEXT NOT NULL, summary TEXT, latest TEXT, downloads INTEGER NOT NULL DEFAULT 0,
      created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
    CREATE TABLE skill_versions (slug TEXT NOT NULL REFERENCES skills(slug), version TEXT NOT NULL, id TEXT NOT NULL,
      changelog TEXT NOT NULL, fingerprint TEXT NOT NULL, created_at INTEGER NOT NULL,
      yanked_reason TEXT, yanked_at INTEGER, PRIMARY KEY (slug, version));
    CREATE INDEX skill_versions_fp ON skill_versions(slug, fingerprint);
    CREATE TABLE skill_files (slug TEXT NOT NULL, version TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL,
      sha256 TEXT NOT NULL, content_type TEXT NOT NULL, PRIMARY KEY (slug, version, path));
    CREATE TABLE publisher_keys (key_id TEXT PRIMARY KEY, user TEXT NOT NULL REFERENCES users(handle),
      public_key TEXT NOT NULL, created_at INTEGER NOT NULL);
    CREATE TABLE plugins (name TEXT PRIMARY KEY, owner TEXT NOT NULL REFERENCES users(handle), latest TEXT,
      created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
    CREATE TABLE plugin_versions (name TEXT NOT NULL REFERENCES plugins(name), version TEXT NOT NULL,
      sha256 TEXT NOT NULL, key_id TEXT NOT NULL, size INTEGER NOT NULL, manifest TEXT NOT NULL,
      created_at INTEGER NOT NULL, yanked_reason TEXT, yanked_at INTEGER, PRIMARY KEY (name, version));`,
  },
];

export interface SkillRow {
  slug: string;
  id: string;
  owner: string;
  display_name: string;
  summary: string | null;
  latest: string | null;
  downloads: number;
  created_at: number;
  updated_at: number;
}

export interface SkillVersionRow {
  slug: string;
  version: string;
  id: string;
  changelog: string;
  fingerprint: string;
  created_at: number;
  yanked_reason: string | null;
  yanked_at: number | null;
}

export interface SkillFileRow {
  path: string;
  size: number;
  sha256: string;
  content_type: string;
}

export interface UploadRow {
  ticket: string;
  user: string;
  path: string;
  size: number;
  sha256: string;
  content_type: string;
  created_at: number;
  stored: number;
}

export interface PluginVersionRow {
  name: string;
  version: string;
  sha256: string;
  key_id: string;
  size: number;
  manifest: string;
  created_at: number;
  yanked_reason: string | null;
  yanked_at: number | null;
}

export interface PluginRow {
  name: string;
  owner: string;
  latest: string | null;
  created_at: number;
  updated_at: number;
}

export class RegistryConflict extends Error {}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export interface RegistryStore {
  db: Db;
  dataDir: string;
  blobPath(sha256: string): string;
  putBlob(bytes: Uint8Array): string;
  readBlob(sha256: string): Buffer;
  mintToken(user: string, label?: string): string;
  userForToken(token: string): string | null;
  createUpload(row: Omit<UploadRow, 'created_at' | 'stored'>): void;
  getUpload(ticket: string): UploadRow | undefined;
  markUploadStored(ticket: string): void;
  getSkill(slug: string): SkillRow | undefined;
  listSkills(opts: { limit: number; offset: number; sort: string; prefix?: string }): SkillRow[];
  allSkills(): SkillRow[];
  getSkillVersion(slug: string, version: string): SkillVersionRow | undefined;
  listSkillVersions(slug: string): SkillVersionRow[];
  skillVersionByFingerprint(slug: string, fingerprint: string): SkillVersionRow | undefined;
  skillFiles(slug: string, version: string): SkillFileRow[];
  publishSkill(args: {
    slug: string; owner: string; displayName: string; summary: string | null; version: string;
    changelog: string; fingerprint: string; files: SkillFileRow[]; tickets: string[];
  }): { skillId: string; versionId: string };
  yankSkillVersion(slug: string, version: string, reason: string): boolean;
  countDownload(slug: string): void;
  registerKey(user: string, keyId: string, publicKeyB64: string): void;
  getKey(keyId: string): { key_id: string; user: string; public_key: string } | undefined;
  getPlugin(name: string): PluginRow | undefined;
  listPluginVersions(name: string): PluginVersionRow[];
  getPluginVersion(name: string, version: string): PluginVersionRow | undefined;
  publishPlugin(args: { name: string; owner: string; version: string; sha256: string; keyId: string; size: number; manifest: string }): void;
  yankPluginVersion(name: string, version: string, reason: string): boolean;
  close(): void;
}

/** Recompute `latest` as the highest non-yanked version (yank never deletes). */
function highest(versions: string[]): string | null {
  if (versions.length === 0) return null;
  return versions.reduce((a, b) => (compareSemver(a, b) >= 0 ? a : b));
}

export function openRegistryStore(dataDir: string, now: () => number = Date.now): RegistryStore {
  mkdirSync(join(dataDir, 'blobs'), { recursive: true, mode: 0o700 });
  const db = new Database(join(dataDir, 'registry.db'), { timeout: 5000 });
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  migrate(db, REGISTRY_MIGRATIONS);

  const blobPath = (sha256: string) => {
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new Error('bad blob id');
    return join(dataDir, 'blobs', sha256);
  };

  const ensureUser = db.prepare('INSERT OR IGNORE INTO users (handle, display_name, created_at) VALUES (?, ?, ?)');

  const refreshSkillLatest = (slug: string) => {
    const live = (db.prepare('SELECT version FROM skill_versions WHERE slug = ? AND yanked_at IS NULL').all(slug) as { version: string }[]).map((r) => r.version);
    db.prepare('UPDATE skills SET latest = ?, updated_at = ? WHERE slug = ?').run(highest(live), now(), slug);
  };
  const refreshPluginLatest = (name: string) => {
    const live = (db.prepare('SELECT version FROM plugin_versions WHERE name = ? AND yanked_at IS NULL').all(name) as { version: string }[]).map((r) => r.version);
    db.prepare('UPDATE plugins SET latest = ?, updated_at = ? WHERE name = ?').run(highest(live), now(), name);
  };

  return {
    db,
    dataDir,
    blobPath,
    putBlob(bytes) {
      const sha = createHash('sha256').update(bytes).digest('hex');
      const path = blobPath(sha);
      if (!existsSync(path)) writeFileAtomic(path, bytes, 0o600);
      return sha;
    },
    readBlob(sha256) {
      return readFileSync(blobPath(sha256));
    },
    mintToken(user, label) {
      const token = `clh_${randomBytes(32).toString('base64url')}`;
      db.transaction(() => {
        ensureUser.run(user, user, now());
        db.prepare('INSERT INTO tokens (user, token_hash, label, created_at) VALUES (?, ?, ?, ?)').run(user, hashToken(token), label ?? null, now());
      })();
      return token;
    },
    userForToken(token) {
      const row = db.prepare('SELECT user FROM tokens WHERE token_hash = ? AND revoked_at IS NULL').get(hashToken(token)) as { user: string } | undefined;
      return row?.user ?? null;
    },
    createUpload(row) {
      db.prepare('INSERT INTO uploads (ticket, user, path, size, sha256, content_type, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(row.ticket, row.user, row.path, row.size, row.sha256, row.content_type, now());
    },
    getUpload(ticket) {
      return db.prepare('SELECT * FROM uploads WHERE ticket = ?').get(ticket) as UploadRow | undefined;
    },
    markUploadStored(ticket) {
      db.prepare('UPDATE uploads SET stored = 1 WHERE ticket = ?').run(ticket);
    },
    getSkill(slug) {
      return db.prepare('SELECT * FROM skills WHERE slug = ?').get(slug) as SkillRow | undefined;
    },
    listSkills({ limit, offset, sort, prefix }) {
      const order = sort === 'downloads' ? 'downloads DESC, slug' : sort === 'createdAt' ? 'created_at DESC, slug' : 'updated_at DESC, slug';
      const where = prefix ? "WHERE latest IS NOT NULL AND slug LIKE ? ESCAPE '\\'" : 'WHERE latest IS NOT NULL';
      const args: unknown[] = prefix ? [prefix.replace(/[\\%_]/g, (c) => '\\' + c) + '%'] : [];
      return db.prepare(`SELECT * FROM skills ${where} ORDER BY ${order} LIMIT ? OFFSET ?`).all(...args, limit, offset) as SkillRow[];
    },
    allSkills() {
      return db.prepare('SELECT * FROM skills WHERE latest IS NOT NULL').all() as SkillRow[];
    },
    getSkillVersion(slug, version) {
      return db.prepare('SELECT * FROM skill_versions WHERE slug = ? AND version = ?').get(slug, version) as SkillVersionRow | undefined;
    },
    listSkillVersions(slug) {
      const rows = db.prepare('SELECT * FROM skill_versions WHERE slug = ?').all(slug) as SkillVersionRow[];
      return rows.sort((a, b) => compareSemver(b.version, a.version));
    },
    skillVersionByFingerprint(slug, fingerprint) {
      return db.prepare('SELECT * FROM skill_versions WHERE slug = ? AND fingerprint = ? ORDER BY created_at DESC LIMIT 1').get(slug, fingerprint) as SkillVersionRow | undefined;
    },
    skillFiles(slug, version) {
      return db.prepare('SELECT path, size, sha256, content_type FROM skill_files WHERE slug = ? AND version = ? ORDER BY path').all(slug, version) as SkillFileRow[];
    },
    publishSkill(a) {
      const versionId = randomUUID();
      let skillId = '';
      db.transaction(() => {
        const existing = db.prepare('SELECT * FROM skills WHERE slug = ?').get(a.slug) as SkillRow | undefined;
        if (existing && existing.owner !== a.owner) throw new RegistryConflict(`skill "${a.slug}" belongs to @${existing.owner}`);
        if (db.prepare('SELECT 1 FROM skill_versions WHERE slug = ? AND version = ?').get(a.slug, a.version)) {
          throw new RegistryConflict(`${a.slug}@${a.version} is already published; versions are immutable`);
        }
        if (existing) {
          skillId = existing.id;
          db.prepare('UPDATE skills SET display_name = ?, summary = ? WHERE slug = ?').run(a.displayName, a.summary, a.slug);
        } else {
          skillId = randomUUID();
          db.prepare('INSERT INTO skills (slug, id, owner, display_name, summary, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
            .run(a.slug, skillId, a.owner, a.displayName, a.summary, now(), now());
        }
        db.prepare('INSERT INTO skill_versions (slug, version, id, changelog, fingerprint, created_at) VALUES (?, ?, ?, ?, ?, ?)')
          .run(a.slug, a.version, versionId, a.changelog, a.fingerprint, now());
        const insert = db.prepare('INSERT INTO skill_files (slug, version, path, size, sha256, content_type) VALUES (?, ?, ?, ?, ?, ?)');
        for (const f of a.files) insert.run(a.slug, a.version, f.path, f.size, f.sha256, f.content_type);
        // A ticket is single use: it cannot be replayed into another version.
        const consume = db.prepare('DELETE FROM uploads WHERE ticket = ?');
        for (const t of a.tickets) consume.run(t);
        refreshSkillLatest(a.slug);
      })();
      return { skillId, versionId };
    },
    yankSkillVersion(slug, version, reason) {
      let changed = false;
      db.transaction(() => {
        changed = db.prepare('UPDATE skill_versions SET yanked_reason = ?, yanked_at = ? WHERE slug = ? AND version = ? AND yanked_at IS NULL')
          .run(reason, now(), slug, version).changes > 0;
        refreshSkillLatest(slug);
      })();
      return changed;
    },
    countDownload(slug) {
      db.prepare('UPDATE skills SET downloads = downloads + 1 WHERE slug = ?').run(slug);
    },
    registerKey(user, keyId, publicKeyB64) {
      const existing = db.prepare('SELECT user FROM publisher_keys WHERE key_id = ?').get(keyId) as { user: string } | undefined;
      if (existing && existing.user !== user) throw new RegistryConflict(`key ${keyId} is registered to another publisher`);
      if (!existing) db.prepare('INSERT INTO publisher_keys (key_id, user, public_key, created_at) VALUES (?, ?, ?, ?)').run(keyId, user, publicKeyB64, now());
    },
    getKey(keyId) {
      return db.prepare('SELECT key_id, user, public_key FROM publisher_keys WHERE key_id = ?').get(keyId) as { key_id: string; user: string; public_key: string } | undefined;
    },
    getPlugin(name) {
      return db.prepare('SELECT * FROM plugins WHERE name = ?').get(name) as PluginRow | undefined;
    },
    listPluginVersions(name) {
      const rows = db.prepare('SELECT * FROM plugin_versions WHERE name = ?').all(name) as PluginVersionRow[];
      return rows.sort((a, b) => compareSemver(b.version, a.version));
    },
    getPluginVersion(name, version) {
      return db.prepare('SELECT * FROM plugin_versions WHERE name = ? AND version = ?').get(name, version) as PluginVersionRow | undefined;
    },
    publishPlugin(a) {
      db.transaction(() => {
        const existing = db.prepare('SELECT owner FROM plugins WHERE name = ?').get(a.name) as { owner: string } | undefined;
        if (existing && existing.owner !== a.owner) throw new RegistryConflict(`plugin "${a.name}" belongs to @${existing.owner}`);
        if (db.prepare('SELECT 1 FROM plugin_versions WHERE name = ? AND version = ?').get(a.name, a.version)) {
          throw new RegistryConflict(`${a.name}@${a.version} is already published; versions are immutable`);
        }
        if (!existing) db.prepare('INSERT INTO plugins (name, owner, created_at, updated_at) VALUES (?, ?, ?, ?)').run(a.name, a.owner, now(), now());
        db.prepare('INSERT INTO plugin_versions (name, version, sha256, key_id, size, manifest, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
          .run(a.name, a.version, a.sha256, a.keyId, a.size, a.manifest, now());
        refreshPluginLatest(a.name);
      })();
    },
    yankPluginVersion(name, version, reason) {
      let changed = false;
      db.transaction(() => {
        changed = db.prepare('UPDATE plugin_versions SET yanked_reason = ?, yanked_at = ? WHERE name = ? AND version = ? AND yanked_at IS NULL')
          .run(reason, now(), name, version).changes > 0;
        refreshPluginLatest(name);
      })();
      return changed;
    },
    close() {
      db.close();
    },
  };
}
