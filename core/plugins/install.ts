// Installing and removing local plugin folders (the CLI's `plugins install|remove|grant`).
// Verification happens before anything is copied; the copy is verified again
// every time the host loads it.

import { cpSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { HomePaths } from '../home.ts';
import { loadTrustStore, parseManifest, verifyPlugin, type Manifest, type VerifiedPlugin } from './manifest.ts';
import { permissionList, permissionFormError } from './permissions.ts';
import { pluginHome, readInstallRecord, writeInstallRecord, type InstallRecord } from './installed.ts';

export interface InstallOptions {
  allowWorker?: boolean;
  allowDowngrade?: boolean;
  now?: number;
}

/** Check a folder as an install candidate; returns what it would request. Throws PluginRefusedError. */
export function inspectFolder(paths: HomePaths, dir: string, opts: InstallOptions = {}): { verified: VerifiedPlugin; requested: string[]; previous: InstallRecord | null } {
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
  return { verified, requested, previous };
}

export function installFolder(paths: HomePaths, dir: string, opts: InstallOptions = {}): InstallRecord {
  const { verified, requested, previous } = inspectFolder(paths, dir, opts);
  const m = verified.manifest;
  const target = join(pluginHome(paths.pluginsDir, m.id), m.version);
  rmSync(target, { recursive: true, force: true });
  cpSync(dir, target, { recursive: true, filter: (src) => !src.includes('/.') });
  const record: InstallRecord = {
    id: m.id,
    version: m.version,
    granted: [...new Set([...requested, ...(opts.allowWorker ? ['worker'] : [])])],
    allowWorker: opts.allowWorker === true,
    installedAt: opts.now ?? Date.now(),
  };
  writeInstallRecord(paths.pluginsDir, record);
  if (previous && previous.version !== m.version) rmSync(join(pluginHome(paths.pluginsDir, m.id), previous.version), { recursive: true, force: true });
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
