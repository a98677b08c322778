// Where plugins live on disk and what the user granted them. Bundled plugins:
// manifests/<kind>.<id>.json + plugins/<kind>s/<id>/. Installed plugins:
// $CARAPACE_HOME/plugins/<id>/<version>/ (plugin.json + files) and
// $CARAPACE_HOME/plugins/<id>/install.json, the record this module alone writes.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../home.ts';
import { loadTrustStore, PluginRefusedError, REPO_ROOT, verifyPlugin, type Manifest, type PluginKind, type TrustStore, type VerifiedPlugin } from './manifest.ts';
import type { HomePaths } from '../home.ts';

export const KIND_DIRS: Record<PluginKind, string> = { channel: 'channels', provider: 'providers', memory: 'memory', tool: 'tools' };

export interface InstallRecord {
  id: string;
  version: string;
  /** Permission strings the user accepted (permissions.ts). */
  granted: string[];
  allowWorker: boolean;
  installedAt: number;
  /** Registry installs (install-registry.ts): who signed it, where it came from, the tarball's sha256 and the manifest digest. */
  keyId?: string;
  registry?: string;
  sha256?: string;
  digest?: string;
  /** The version this one replaced, kept on disk for `plugins install ID --rollback`. */
  previous?: InstallRecord;
}

export interface PluginLocation {
  id: string;
  source: 'bundled' | 'installed';
  manifestFile: string;
  dir: string;
  /** Files in `dir` that belong to the install, not the plugin. */
  ignore: string[];
  record?: InstallRecord;
}

export function bundledPlugins(root = REPO_ROOT): PluginLocation[] {
  const manifests = join(root, 'manifests');
  if (!existsSync(manifests)) return [];
  const out: PluginLocation[] = [];
  for (const name of readdirSync(manifests).sort()) {
    const m = /^(channel|provider|memory|tool)\.([a-z0-9][a-z0-9-]{0,63})\.json$/.exec(name);
    if (!m) continue;
    out.push({ id: m[2], source: 'bundled', manifestFile: join(manifests, name), dir: join(root, 'plugins', KIND_DIRS[m[1] as PluginKind], m[2]), ignore: [] });
  }
  return out;
}

export function pluginHome(pluginsDir: string, id: string): string {
  return join(pluginsDir, ...id.split('/'));
}

export function readInstallRecord(pluginsDir: string, id: string): InstallRecord | null {
  const file = join(pluginHome(pluginsDir, id), 'install.json');
  if (!existsSync(file)) return null;
  return JSON.parse(readFileSync(file, 'utf8')) as InstallRecord;
}

export function writeInstallRecord(pluginsDir: string, record: InstallRecord): void {
  writeFileAtomic(join(pluginHome(pluginsDir, record.id), 'install.json'), JSON.stringify(record, null, 2) + '\n');
}

export function installedPlugins(pluginsDir: string): PluginLocation[] {
  if (!existsSync(pluginsDir)) return [];
  const ids: string[] = [];
  for (const name of readdirSync(pluginsDir).sort()) {
    if (name.startsWith('@')) {
      for (const sub of readdirSync(join(pluginsDir, name)).sort()) ids.push(`${name}/${sub}`);
    } else ids.push(name);
  }
  const out: PluginLocation[] = [];
  for (const id of ids) {
    const record = readInstallRecord(pluginsDir, id);
    if (!record) continue;
    const dir = join(pluginHome(pluginsDir, id), record.version);
    out.push({ id, source: 'installed', manifestFile: join(dir, 'plugin.json'), dir, ignore: ['plugin.json'], record });
  }
  return out;
}

/**
 * Verify a plugin where it lies, as the gateway loads it: its manifest, files and
 * signature, the folder's id, and a bundled plugin's first-party key. Throws
 * PluginRefusedError with the reason.
 */
export function verifyLocation(loc: PluginLocation, trust: TrustStore): VerifiedPlugin {
  let text: string;
  try {
    text = readFileSync(loc.manifestFile, 'utf8');
  } catch (err) {
    throw new PluginRefusedError('unreadable', `plugin ${loc.id}: cannot read ${loc.manifestFile}: ${(err as Error).message}`, { pluginId: loc.id });
  }
  const v = verifyPlugin(text, loc.dir, { trust, source: loc.source, granted: loc.record?.granted, allowWorker: loc.record?.allowWorker, ignoreFiles: loc.ignore });
  if (v.manifest.id !== loc.id) throw new PluginRefusedError('schema', `plugin folder ${loc.id} holds a manifest for ${v.manifest.id}`, { pluginId: loc.id, pointer: '/id' });
  if (loc.source === 'bundled' && !v.key.firstParty) throw new PluginRefusedError('unknown-key', `bundled plugin ${loc.id} is not signed by the first-party key`, { pluginId: loc.id });
  return v;
}

export interface VerifiedOnDisk {
  loc: PluginLocation;
  verified?: VerifiedPlugin;
  error?: Error;
}

/** Every bundled and installed plugin, verified as the gateway would (for the offline verbs). */
export function verifyOnDisk(paths: HomePaths): VerifiedOnDisk[] {
  const { store } = loadTrustStore(paths.trustDir);
  return [...bundledPlugins(), ...installedPlugins(paths.pluginsDir)].map((loc) => {
    try {
      return { loc, verified: verifyLocation(loc, store) };
    } catch (err) {
      return { loc, error: err as Error };
    }
  });
}

/** The manifests of the plugins on disk that verify; a bundled plugin's id is its own (as in the gateway). */
export function verifiedManifests(paths: HomePaths): Manifest[] {
  const byId = new Map<string, Manifest>();
  for (const { loc, verified } of verifyOnDisk(paths)) if (verified && !byId.has(loc.id)) byId.set(loc.id, verified.manifest);
  return [...byId.values()];
}
