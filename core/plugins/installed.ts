// Where plugins live on disk and what the user granted them. Bundled plugins:
// manifests/<kind>.<id>.json + plugins/<kind>s/<id>/. Installed plugins:
// $CARAPACE_HOME/plugins/<id>/<version>/ (plugin.json + files) and
// $CARAPACE_HOME/plugins/<id>/install.json, the record this module alone writes.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../home.ts';
import { REPO_ROOT, type PluginKind } from './manifest.ts';

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
