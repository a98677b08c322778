import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../home.ts';
import { ArchiveError } from '../registry/archive-path.ts';
import { sha256Hex, skillFingerprint } from '../registry/skill-hash.ts';
import { isSkillManifestPath, parseSkillFrontmatter, SKILL_SLUG, SkillFormatError } from '../registry/skill-format.ts';
import { readZip, type ArchiveFile } from '../registry/zip.ts';
import type { ClawHubClient } from './clawhub-client.ts';

// Skills live in `<workspace>/skills/<slug>/`, tracked by `<workspace>/.clawhub/lock.json`
// — the same layout and lock schema the clawhub CLI uses with `--workdir <workspace>`,
// so either tool sees the other's installs. We add, per entry, the registry and
// the sha256 of every installed file, which is what `skills verify` checks.

export interface LockEntry {
  version: string | null;
  installedAt: number;
  ownerHandle?: string;
  registry?: string;
  fingerprint?: string;
  files?: Record<string, string>;
  pinned?: boolean;
  pinReason?: string;
}

export interface Lockfile {
  version: 1;
  skills: Record<string, LockEntry>;
}

export class SkillInstallError extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.name = 'SkillInstallError';
    this.reason = reason;
  }
}

export function lockPath(workspace: string): string {
  return join(workspace, '.clawhub', 'lock.json');
}

export function skillsDir(workspace: string): string {
  return join(workspace, 'skills');
}

export function readLock(workspace: string): Lockfile {
  const path = lockPath(workspace);
  if (!existsSync(path)) return { version: 1, skills: {} };
  let parsed: Partial<Lockfile>;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8')) as Partial<Lockfile>;
  } catch {
    throw new SkillInstallError('lock-invalid', `${path} is not valid JSON; fix or remove it`);
  }
  if (parsed.version !== 1 || !parsed.skills || typeof parsed.skills !== 'object') throw new SkillInstallError('lock-invalid', `${path} is not a version 1 skills lock file`);
  return { version: 1, skills: parsed.skills };
}

export function writeLock(workspace: string, lock: Lockfile): void {
  writeFileAtomic(lockPath(workspace), JSON.stringify(lock, null, 2) + '\n', 0o644);
}

export function parseSkillSpec(spec: string): { slug: string; version?: string } {
  const at = spec.lastIndexOf('@');
  const slug = at > 0 ? spec.slice(0, at) : spec;
  const version = at > 0 ? spec.slice(at + 1) : undefined;
  if (!SKILL_SLUG.test(slug)) throw new SkillInstallError('bad-slug', `invalid skill slug "${slug}" (lowercase letters, digits, dashes)`);
  if (version !== undefined && !/^[0-9A-Za-z.+-]{1,64}$/.test(version)) throw new SkillInstallError('bad-version', `invalid version "${version}"`);
  return { slug, version };
}

/** Every regular file of an installed skill, as clawhub hashes them: hidden paths skipped. */
export function hashInstalledSkill(dir: string): { files: Record<string, string>; oddities: string[] } {
  const files: Record<string, string> = {};
  const oddities: string[] = [];
  const walk = (abs: string, rel: string) => {
    for (const name of readdirSync(abs).sort()) {
      if (name.startsWith('.')) continue;
      const a = join(abs, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(a);
      if (st.isDirectory()) walk(a, r);
      else if (st.isFile()) files[r] = sha256Hex(readFileSync(a));
      else oddities.push(r); // a symlink or device planted after install
    }
  };
  walk(dir, '');
  return { files, oddities };
}

export interface InstallResult {
  slug: string;
  version: string;
  dir: string;
  fingerprint: string;
  files: number;
  yanked: string | null;
  replaced: boolean;
}

/**
 * Download a skill and move it into place atomically: unpack into a staging
 * folder beside the target, then swap with two renames, so a failure at any
 * point leaves the previous install (or nothing) — never a half-written skill.
 */
export async function installSkill(client: ClawHubClient, workspace: string, spec: { slug: string; version?: string }, opts: { force?: boolean; now?: () => number } = {}): Promise<InstallResult> {
  const now = opts.now ?? Date.now;
  const lock = readLock(workspace);
  const dir = join(skillsDir(workspace), spec.slug);
  const exists = existsSync(dir);
  if (exists && !opts.force) throw new SkillInstallError('already-installed', `${spec.slug} is already installed at ${dir} (use --force to replace it)`);
  if (lock.skills[spec.slug]?.pinned) throw new SkillInstallError('pinned', `${spec.slug} is pinned; unpin it first`);

  const meta = await client.skill(spec.slug);
  if (meta.malware) throw new SkillInstallError('malware', `${spec.slug} is flagged as malware by the registry`);
  if (meta.suspicious && !opts.force) throw new SkillInstallError('suspicious', `${spec.slug} is flagged for security review; review it and pass --force to install anyway`);
  const version = spec.version ?? meta.latestVersion;
  if (!version) throw new SkillInstallError('no-version', `${spec.slug} has no installable version`);
  const vmeta = await client.version(spec.slug, version);
  const zip = await client.download(spec.slug, version);

  let entries: ArchiveFile[];
  try {
    entries = readZip(zip);
  } catch (err) {
    if (err instanceof ArchiveError) throw new SkillInstallError(err.reason, `archive refused: ${err.message}`);
    throw err;
  }
  // Hidden paths are not part of a skill (clawhub ignores them); never let an
  // archive plant our own .clawhub bookkeeping.
  entries = entries.filter((e) => !e.path.split('/').some((s) => s.startsWith('.')));
  const manifest = entries.find((e) => isSkillManifestPath(e.path));
  if (!manifest) throw new SkillInstallError('skill-md-missing', `${spec.slug}@${version} has no SKILL.md`);
  try {
    parseSkillFrontmatter(Buffer.from(manifest.bytes).toString('utf8'));
  } catch (err) {
    if (err instanceof SkillFormatError) throw new SkillInstallError(err.reason, `${spec.slug}@${version}: ${err.message}`);
    throw err;
  }
  const files: Record<string, string> = {};
  for (const e of entries) files[e.path] = sha256Hex(e.bytes);
  if (vmeta.files) {
    // The registry's own file list must agree with the archive it served.
    for (const f of vmeta.files) {
      if (f.path.split('/').some((s) => s.startsWith('.'))) continue;
      if (files[f.path] !== f.sha256) throw new SkillInstallError('hash-mismatch', `${spec.slug}@${version}: ${f.path} in the archive does not match the registry's sha256`);
    }
    const listed = new Set(vmeta.files.map((f) => f.path));
    for (const path of Object.keys(files)) {
      if (!listed.has(path)) throw new SkillInstallError('file-not-listed', `${spec.slug}@${version}: ${path} is in the archive but not in the registry's file list`);
    }
  }
  const fingerprint = skillFingerprint(Object.entries(files).map(([path, sha256]) => ({ path, sha256 })));

  const parent = skillsDir(workspace);
  mkdirSync(parent, { recursive: true, mode: 0o700 });
  const stage = mkdtempSync(join(parent, `.${spec.slug}.stage-`));
  const backup = join(parent, `.${spec.slug}.old-${process.pid}-${now()}`);
  let movedOld = false;
  try {
    for (const e of entries) {
      const out = join(stage, e.path);
      mkdirSync(dirname(out), { recursive: true, mode: 0o755 });
      writeFileSync(out, e.bytes, { mode: 0o644, flag: 'wx' });
    }
    const installedAt = now();
    const origin = { version: 1, registry: client.registry, slug: spec.slug, ...(meta.owner ? { ownerHandle: meta.owner } : {}), installedVersion: version, installedAt, fingerprint };
    mkdirSync(join(stage, '.clawhub'), { mode: 0o755 });
    writeFileSync(join(stage, '.clawhub', 'origin.json'), JSON.stringify(origin, null, 2) + '\n', { mode: 0o644 });
    if (exists) {
      renameSync(dir, backup);
      movedOld = true;
    }
    renameSync(stage, dir);
    lock.skills[spec.slug] = {
      version,
      installedAt,
      ...(meta.owner ? { ownerHandle: meta.owner } : {}),
      registry: client.registry,
      fingerprint,
      files,
    };
    writeLock(workspace, lock);
  } catch (err) {
    if (movedOld && !existsSync(dir)) renameSync(backup, dir);
    rmSync(stage, { recursive: true, force: true });
    throw err;
  }
  if (movedOld) rmSync(backup, { recursive: true, force: true });
  return { slug: spec.slug, version, dir, fingerprint, files: entries.length, yanked: vmeta.yanked, replaced: exists };
}

export function removeSkill(workspace: string, slug: string): { removedDir: boolean; removedLock: boolean } {
  if (!SKILL_SLUG.test(slug)) throw new SkillInstallError('bad-slug', `invalid skill slug "${slug}"`);
  const lock = readLock(workspace);
  const dir = join(skillsDir(workspace), slug);
  const hadDir = existsSync(dir);
  const hadLock = Object.hasOwn(lock.skills, slug);
  if (!hadDir && !hadLock) throw new SkillInstallError('not-installed', `${slug} is not installed`);
  if (hadDir) {
    // Move aside first so a crash mid-delete never leaves a half skill under its real name.
    const trash = join(skillsDir(workspace), `.${slug}.removing-${process.pid}`);
    renameSync(dir, trash);
    rmSync(trash, { recursive: true, force: true });
  }
  if (hadLock) {
    delete lock.skills[slug];
    writeLock(workspace, lock);
  }
  return { removedDir: hadDir, removedLock: hadLock };
}

export interface ListedSkill {
  slug: string;
  version: string | null;
  tracked: boolean;
  registry?: string;
}

export function listSkills(workspace: string): ListedSkill[] {
  const lock = readLock(workspace);
  const out: ListedSkill[] = Object.entries(lock.skills).map(([slug, e]) => ({ slug, version: e.version, tracked: true, ...(e.registry ? { registry: e.registry } : {}) }));
  const dir = skillsDir(workspace);
  if (existsSync(dir)) {
    for (const name of readdirSync(dir).sort()) {
      if (name.startsWith('.') || Object.hasOwn(lock.skills, name)) continue;
      if (existsSync(join(dir, name, 'SKILL.md'))) out.push({ slug: name, version: null, tracked: false });
    }
  }
  return out.sort((a, b) => a.slug.localeCompare(b.slug));
}

export interface VerifyReport {
  slug: string;
  ok: boolean;
  modified: string[];
  missing: string[];
  added: string[];
  problem?: string;
}

/** Compare each installed skill's files with the hashes recorded at install. */
export function verifySkills(workspace: string, only?: string): VerifyReport[] {
  const lock = readLock(workspace);
  const slugs = only ? [only] : Object.keys(lock.skills).sort();
  return slugs.map((slug) => {
    const entry = lock.skills[slug];
    const base = { slug, modified: [] as string[], missing: [] as string[], added: [] as string[] };
    if (!entry) return { ...base, ok: false, problem: 'not installed (no lock entry)' };
    if (!entry.files) return { ...base, ok: false, problem: 'no recorded hashes (installed by another tool); reinstall with carapace skills install --force' };
    const dir = join(skillsDir(workspace), slug);
    if (!existsSync(dir)) return { ...base, ok: false, problem: `folder missing: ${dir}`, missing: Object.keys(entry.files) };
    const { files, oddities } = hashInstalledSkill(dir);
    for (const [path, sha] of Object.entries(entry.files)) {
      if (!(path in files)) base.missing.push(path);
      else if (files[path] !== sha) base.modified.push(path);
    }
    for (const path of Object.keys(files)) if (!(path in entry.files)) base.added.push(path);
    base.added.push(...oddities);
    const ok = base.modified.length === 0 && base.missing.length === 0 && base.added.length === 0;
    return { ...base, ok };
  });
}
