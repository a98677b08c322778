// Installing and removing plugins (the CLI's `plugins install|remove|grant`).
// Verification happens before anything is written, and what is written is the
// bytes that were verified; the copy is verified again every time the host loads it.

import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import type { HomePaths } from '../home.ts';
import { loadTrustStore, parseManifest, verifyPlugin, type Manifest, type VerifiedPlugin } from './manifest.ts';
import { permissionList, permissionFormError } from './permissions.ts';
import { pluginHome, readInstallRecord, writeInstallRecord, type InstallRecord } from './installed.ts';
import { ReleaseRefused, unpackRelease } from '../registry/plugin-fetch.ts';
import { MAX_PLUGIN_TARBALL_BYTES } from '../registry/archive-path.ts';

/** An install refused before or besides manifest verification; `reason` is a short machine-readable word. */
export class InstallRefused extends Error {
  readonly reason: string;
  readonly details: Record<string, unknown>;
  constructor(reason: string, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'InstallRefused';
    this.reason = reason;
    this.details = details;
  }
}

/**
 * A plugin folder or a .tgz of one on this machine, as a folder to inspect: an
 * archive is unpacked (with the registry's archive rules) into the plugins'
 * staging folder, which `close` removes.
 */
export function openLocalSource(paths: HomePaths, source: string): { dir: string; close(): void } {
  if (!existsSync(source)) throw new InstallRefused('not-found', `no plugin folder or archive at ${source}`);
  let unpacked: string | null = null;
  const stat = statSync(source);
  if (stat.isFile()) {
    if (stat.size > MAX_PLUGIN_TARBALL_BYTES) throw new InstallRefused('too-large', `${source} is larger than ${MAX_PLUGIN_TARBALL_BYTES} bytes`);
    try {
      unpacked = unpackRelease(readFileSync(source), join(paths.pluginsDir, '.staging'));
    } catch (err) {
      if (err instanceof ReleaseRefused) throw new InstallRefused(err.reason, err.message);
      throw err;
    }
  }
  const dir = unpacked ?? source;
  const close = () => {
    if (unpacked) rmSync(unpacked, { recursive: true, force: true });
  };
  if (!existsSync(join(dir, 'plugin.json'))) {
    close();
    throw new InstallRefused('manifest-missing', `${source} has no plugin.json`);
  }
  return { dir, close };
}

export interface InstallOptions {
  allowWorker?: boolean;
  allowDowngrade?: boolean;
  now?: number;
}

/** Check a folder as an install candidate; returns what it would request. Throws PluginRefusedError. */
export interface Inspected {
  verified: VerifiedPlugin;
  /** The manifest's bytes as verified: what gets installed, whatever the folder holds by then. */
  manifestText: string;
  requested: string[];
  previous: InstallRecord | null;
}

export function inspectFolder(paths: HomePaths, dir: string, opts: InstallOptions = {}): Inspected {
  const text = readFileSync(join(dir, 'plugin.json'), 'utf8');
  const manifest: Manifest = parseManifest(text);
  const previous = readInstallRecord(paths.pluginsDir, manifest.id);
  const requested = permissionList(manifest.permissions, manifest.runtime ?? 'isolate');
  const { store } = loadTrustStore(paths.trustDir);
  const verified = verifyPlugin(text, dir, {
    trust: store,
    source: 'installed',
    granted: requested.filter((p) => p !== 'worker'), // the user is being asked for these; the worker runtime needs its own allow
    allowWorker: opts.allowWorker,
    ignoreFiles: ['plugin.json'],
    installedVersion: previous?.version,
    allowDowngrade: opts.allowDowngrade,
  });
  return { verified, manifestText: text, requested, previous };
}

/** Install a folder; `inspected`, when the caller already showed what it asks for, is not verified again. */
export function installFolder(paths: HomePaths, dir: string, opts: InstallOptions = {}, inspected: Inspected = inspectFolder(paths, dir, opts)): InstallRecord {
  const { verified, manifestText, requested, previous } = inspected;
  return commitInstall(paths, verified, manifestText, previous, {
    granted: [...new Set([...requested, ...(opts.allowWorker ? ['worker'] : [])])],
    allowWorker: opts.allowWorker === true,
    installedAt: opts.now ?? Date.now(),
    digest: verified.digest,
  });
}

/**
 * Put a verified plugin in place: its verified bytes into a staging folder beside
 * the versions, renamed onto the version's folder, then the install.json switch
 * (atomic) — a crash before it leaves the previous version in force. The version
 * replaced stays on disk for `--rollback`; older ones go.
 */
export function commitInstall(
  paths: HomePaths,
  verified: VerifiedPlugin,
  manifestText: string,
  previous: InstallRecord | null,
  fields: Omit<InstallRecord, 'id' | 'version' | 'previous'>,
): InstallRecord {
  const m = verified.manifest;
  const home = pluginHome(paths.pluginsDir, m.id);
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const stage = mkdtempSync(join(home, '.staging-'));
  const old = join(home, `.old-${m.version}-${process.pid}-${Date.now()}`);
  try {
    for (const [name, bytes] of verified.files) {
      const out = resolve(stage, name);
      if (!out.startsWith(stage + sep)) throw new Error(`plugin ${m.id}: file ${name} is outside the plugin folder`);
      mkdirSync(dirname(out), { recursive: true, mode: 0o700 });
      writeFileSync(out, bytes, { mode: 0o600 });
    }
    writeFileSync(join(stage, 'plugin.json'), manifestText, { mode: 0o600 });
    const target = join(home, m.version);
    if (existsSync(target)) renameSync(target, old);
    renameSync(stage, target);
  } finally {
    rmSync(stage, { recursive: true, force: true });
    rmSync(old, { recursive: true, force: true });
  }
  const { previous: _older, ...prevFlat } = previous ?? ({} as InstallRecord);
  const record: InstallRecord = {
    id: m.id,
    version: m.version,
    ...fields,
    ...(previous && previous.version !== m.version ? { previous: prevFlat as InstallRecord } : {}),
  };
  writeInstallRecord(paths.pluginsDir, record);
  for (const name of readdirSync(home)) {
    if (name === m.version || name === record.previous?.version) continue;
    if (/^\d+\.\d+\.\d+/.test(name)) rmSync(join(home, name), { recursive: true, force: true });
  }
  return record;
}

export function removePlugin(paths: HomePaths, id: string): boolean {
  const home = pluginHome(paths.pluginsDir, id);
  if (!existsSync(join(home, 'install.json'))) return false;
  rmSync(home, { recursive: true, force: true });
  return true;
}

/** Add one permission to an installed plugin's grant. */
export function grantPermission(paths: HomePaths, id: string, perm: string): InstallRecord {
  const problem = permissionFormError(perm);
  if (problem) throw new Error(problem);
  const record = readInstallRecord(paths.pluginsDir, id);
  if (!record) throw new Error(`plugin ${id} is not installed (bundled plugins hold every permission they request; narrow them with config plugins.${id}.grant.deny)`);
  if (!record.granted.includes(perm)) record.granted.push(perm);
  if (perm === 'worker') record.allowWorker = true;
  writeInstallRecord(paths.pluginsDir, record);
  return record;
}
