import { existsSync, statSync, readdirSync, chmodSync, readFileSync, statfsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { delimiter, join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { Config } from '../config/config.ts';
import type { HomePaths } from '../home.ts';
import { readRunInfo } from '../gateway/lock.ts';
import { effectiveProviders, NO_PROVIDER_HELP } from '../providers/detect.ts';
import { findBwrap } from '../plugins/confine.ts';
import { verifyOnDisk } from '../plugins/installed.ts';
import { openSecrets } from '../secrets/store.ts';
import { envRefName } from '../secrets/source.ts';
import { PluginRefusedError, type RefusalReason } from '../plugins/manifest.ts';

export type Severity = 'error' | 'warn' | 'info';

export interface Finding {
  id: string;
  severity: Severity;
  what: string;
  why: string;
  fix: string;
  /** Present when `doctor --fix` may apply the fix unattended. */
  apply?: () => void;
}

export interface DoctorContext {
  paths: HomePaths;
  config: Config;
  env: NodeJS.ProcessEnv;
  /** Below this much free space on the home's filesystem, warn (default 1 GiB). */
  minFreeBytes?: number;
  now?: number;
}

export type Check = (ctx: DoctorContext) => Finding[];

const bindExposure: Check = ({ config, paths }) => {
  // A running gateway may have been started with --bind (a container's CMD does): what it listens on is what counts.
  const running = readRunInfo(paths);
  const bind = running?.bind ?? config.gateway.bind;
  if (bind === 'loopback' || bind === '127.0.0.1' || bind === '::1') return [];
  // Likewise TLS: config.json may name a certificate the running gateway has not loaded yet.
  if (running ? running.tls : config.gateway.tls) {
    return [{ id: 'bind.lan', severity: 'info', what: `the gateway listens on ${bind} with TLS`, why: 'other machines on the network can reach it; every device still has to pair', fix: 'bind loopback unless you need remote devices' }];
  }
  return [{
    id: 'bind.exposed',
    severity: 'error',
    what: `the gateway listens on ${bind} without TLS`,
    why: 'anyone on the network can reach the bus and the webhook endpoints; traffic (chat, tool output) is unencrypted',
    fix: 'carapace config set gateway.bind loopback (or configure gateway.tls)',
  }];
};

function tooOpen(path: string, allowed: number): boolean {
  return existsSync(path) && (statSync(path).mode & 0o777 & ~allowed) !== 0;
}

const statePermissions: Check = ({ paths }) => {
  const findings: Finding[] = [];
  if (tooOpen(paths.root, 0o700)) {
    findings.push({
      id: 'perm.home',
      severity: 'error',
      what: `${paths.root} is readable by other users (mode ${(statSync(paths.root).mode & 0o777).toString(8)})`,
      why: 'the state directory holds the device keys, the encrypted secrets and every transcript; possession of it is ownership',
      fix: `chmod 700 ${paths.root}`,
      apply: () => chmodSync(paths.root, 0o700),
    });
  }
  const privateFiles = [paths.config, paths.db, paths.secrets, `${paths.db}-wal`, `${paths.db}-shm`];
  if (existsSync(paths.identityDir)) privateFiles.push(...readdirSync(paths.identityDir).map((f) => join(paths.identityDir, f)));
  for (const file of privateFiles) {
    if (!tooOpen(file, 0o600)) continue;
    findings.push({
      id: 'perm.file',
      severity: file.startsWith(paths.identityDir) || file === paths.secrets ? 'error' : 'warn',
      what: `${file} is readable by other users (mode ${(statSync(file).mode & 0o777).toString(8)})`,
      why: 'keys, secrets, config and transcripts must be readable only by the owner',
      fix: `chmod 600 ${file}`,
      apply: () => chmodSync(file, 0o600),
    });
  }
  return findings;
};

const missingProvider: Check = ({ config, env }) => {
  if (Object.keys(effectiveProviders(config, env)).length > 0) return [];
  return [{ id: 'provider.missing', severity: 'warn', what: 'no LLM provider is configured', why: 'the gateway runs, but agents cannot answer', fix: NO_PROVIDER_HELP }];
};

/** A provider whose key names a secret that neither the store nor the environment holds answers nothing but 401s. */
const unresolvedCredentials: Check = ({ paths, config, env }) => {
  let stored: Set<string> | null;
  try {
    stored = new Set(openSecrets(paths, env).names());
  } catch {
    stored = null; // sealed with a passphrase this shell does not have: only the environment can be judged
  }
  const findings: Finding[] = [];
  for (const [id, p] of Object.entries(effectiveProviders(config, env))) {
    const fromEnv = envRefName(p.apiKey);
    const name = fromEnv ?? (p.apiKey && typeof p.apiKey === 'object' ? p.apiKey.secret : null);
    if (!name || env[name]) continue;
    if (!fromEnv && (stored === null || stored.has(name))) continue;
    findings.push({
      id: 'provider.credential-unset',
      severity: 'warn',
      what: fromEnv
        ? `providers.${id}.apiKey is "\${${name}}", and ${name} is not set in this environment`
        : `providers.${id}.apiKey is the secret ${name}, which neither the secrets store nor this environment holds`,
      why: `every request to ${id} is sent without its key and refused; a gateway started from another shell or a service has its own environment, which doctor cannot see`,
      fix: fromEnv ? `export ${name}=... where the gateway starts, or store it: carapace secrets set ${name}, and point the key at it: carapace config set providers.${id}.apiKey '{"secret":"${name}"}'` : `carapace secrets set ${name}`,
    });
  }
  return findings;
};

const openDmPolicies: Check = ({ config }) =>
  Object.entries(config.channels)
    .filter(([id, ch]) => id !== 'webchat' && ch.enabled !== false && ch.dmPolicy === 'open')
    .map(([id]) => ({
      id: 'channel.dm-open',
      severity: 'warn' as const,
      what: `channel ${id} accepts direct messages from anyone (dmPolicy "open")`,
      why: 'any stranger who finds the bot can run your agent, its tools and your token budget',
      fix: `carapace config set channels.${id}.dmPolicy pairing`,
    }));

// Folders of the state directory that hold private material; logs/ can carry transcript text.
const privateDirs: Check = ({ paths }) => {
  const findings: Finding[] = [];
  for (const dir of [paths.identityDir, paths.logsDir, paths.trustDir, paths.pluginsDir, paths.workspace, paths.runDir]) {
    if (!tooOpen(dir, 0o700)) continue;
    findings.push({
      id: 'perm.dir',
      severity: dir === paths.identityDir ? 'error' : 'warn',
      what: `${dir} is open to other users (mode ${(statSync(dir).mode & 0o777).toString(8)})`,
      why: 'a folder others can list or enter exposes key, log, transcript and plugin files as soon as one of them is created loosely',
      fix: `chmod 700 ${dir}`,
      apply: () => chmodSync(dir, 0o700),
    });
  }
  if (existsSync(paths.logsDir)) {
    for (const f of readdirSync(paths.logsDir)) {
      const file = join(paths.logsDir, f);
      if (!statSync(file).isFile() || !tooOpen(file, 0o600)) continue;
      findings.push({
        id: 'perm.file',
        severity: 'warn',
        what: `${file} is readable by other users (mode ${(statSync(file).mode & 0o777).toString(8)})`,
        why: 'logs carry session keys, tool names and message metadata',
        fix: `chmod 600 ${file}`,
        apply: () => chmodSync(file, 0o600),
      });
    }
  }
  return findings;
};

interface InstalledManifest {
  dir: string;
  manifest: {
    id?: unknown;
    runtime?: unknown;
    publisher?: { keyId?: unknown; name?: unknown };
    signature?: { keyId?: unknown; sig?: unknown };
    permissions?: { net?: unknown; fs?: { read?: unknown; write?: unknown }; exec?: unknown };
  } | null;
  error?: string;
}

/** plugins/<id>/<version>/plugin.json, where a scoped id (@publisher/name) is two folders deep. */
function installedManifests(pluginsDir: string): InstalledManifest[] {
  if (!existsSync(pluginsDir)) return [];
  const idDirs: string[] = [];
  for (const a of readdirSync(pluginsDir, { withFileTypes: true })) {
    if (!a.isDirectory()) continue;
    if (a.name.startsWith('@')) {
      for (const b of readdirSync(join(pluginsDir, a.name), { withFileTypes: true })) if (b.isDirectory()) idDirs.push(join(pluginsDir, a.name, b.name));
    } else idDirs.push(join(pluginsDir, a.name));
  }
  const out: InstalledManifest[] = [];
  for (const idDir of idDirs) {
    for (const v of readdirSync(idDir, { withFileTypes: true })) {
      const file = join(idDir, v.name, 'plugin.json');
      if (!v.isDirectory() || !existsSync(file)) continue;
      try {
        const parsed = JSON.parse(readFileSync(file, 'utf8')) as unknown;
        out.push({ dir: join(idDir, v.name), manifest: typeof parsed === 'object' && parsed !== null ? (parsed as InstalledManifest['manifest']) : null, error: typeof parsed === 'object' && parsed !== null ? undefined : 'not a JSON object' });
      } catch (err) {
        out.push({ dir: join(idDir, v.name), manifest: null, error: (err as Error).message });
      }
    }
  }
  return out;
}

const FIRST_PARTY_KEY_FILE = new URL('../../manifests/first-party.pub.json', import.meta.url);

function firstPartyKeyId(): string | null {
  try {
    const k = JSON.parse(readFileSync(FIRST_PARTY_KEY_FILE, 'utf8')) as { keyId?: unknown };
    return typeof k.keyId === 'string' ? k.keyId : null;
  } catch {
    return null;
  }
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

/** A net entry that reaches any host: "*", "*:443", "*:*". */
function anyHost(entry: string): boolean {
  return entry === '*' || /^\*:(\*|\d+)$/.test(entry);
}

// Refusals that mean the plugin's files are not what its publisher signed: someone changed them.
const TAMPERED = new Set<RefusalReason>(['bad-signature', 'file-hash-mismatch', 'file-not-listed']);

/** What the plugin host would refuse at start, checked as it checks (an unsigned or unreadable manifest has a finding of its own). */
const pluginRefusals: Check = ({ paths }) => {
  const unreadable = new Set(installedManifests(paths.pluginsDir).filter((m) => !m.manifest).map((m) => m.dir));
  return verifyOnDisk(paths).flatMap(({ loc, error }): Finding[] => {
    if (!error || unreadable.has(loc.dir)) return [];
    const reason = error instanceof PluginRefusedError ? error.reason : null;
    if (reason === 'unsigned') return [];
    const tampered = reason !== null && TAMPERED.has(reason);
    return [{
      id: 'plugin.refused',
      severity: tampered ? 'error' : 'warn',
      what: `plugin ${loc.id} (${loc.dir}) is refused: ${error.message}`,
      why: tampered ? 'its files are not the ones its publisher signed: changed on disk after install, by something other than Carapace' : 'the plugin host will not load it, so it never runs',
      fix: loc.source === 'bundled' ? 'reinstall Carapace (npm ci) to restore the bundled plugins' : `carapace plugins verify ${loc.id} for details; carapace plugins remove ${loc.id}, then install it again from its source`,
    }];
  });
};

const pluginPrivileges: Check = ({ paths }) => {
  const findings: Finding[] = [];
  const firstParty = firstPartyKeyId();
  for (const { dir, manifest, error } of installedManifests(paths.pluginsDir)) {
    if (!manifest) {
      findings.push({ id: 'plugin.manifest-invalid', severity: 'warn', what: `${dir}/plugin.json cannot be read (${error})`, why: 'the plugin host refuses it, so the plugin never runs', fix: `remove ${dir}, then reinstall the plugin` });
      continue;
    }
    const id = typeof manifest.id === 'string' ? manifest.id : dir;
    const keyId = typeof manifest.signature?.keyId === 'string' ? manifest.signature.keyId : null;
    if (!keyId || typeof manifest.signature?.sig !== 'string') {
      findings.push({ id: 'plugin.unsigned', severity: 'warn', what: `plugin ${id} (${dir}) is unsigned`, why: 'the plugin host refuses unsigned plugins; nothing vouches for this code', fix: `carapace plugins remove ${id}` });
    }
    if (manifest.runtime === 'worker' && keyId !== firstParty) {
      findings.push({
        id: 'plugin.worker-third-party',
        severity: 'warn',
        what: `plugin ${id} runs in a worker thread but is signed by ${keyId ?? 'no one'}, not the first-party key`,
        why: 'a worker is full Node.js inside the gateway process: it can read the state directory, the keys and every secret, whatever its manifest says',
        fix: `carapace plugins remove ${id}, or ask its publisher for an isolate build`,
      });
    }
    const net = strings(manifest.permissions?.net).filter(anyHost);
    if (net.length) {
      findings.push({
        id: 'plugin.broad-net',
        severity: 'warn',
        what: `plugin ${id} may connect to any host (net ${net.map((n) => `"${n}"`).join(', ')})`,
        why: 'with any host reachable, a compromised or malicious plugin can send whatever it sees anywhere',
        fix: `deny it in config (the plugin then reaches none of those hosts): carapace config set plugins.${id}.grant.deny '${JSON.stringify(net.map((n) => `net:${n}`))}', or carapace plugins remove ${id}`,
      });
    }
    const rootWrite = strings(manifest.permissions?.fs?.write).filter((p) => p === '/' || p === '/*' || p === '/**');
    if (rootWrite.length) {
      findings.push({
        id: 'plugin.broad-fs',
        severity: 'error',
        what: `plugin ${id} asks to write anywhere on the filesystem (fs.write "/")`,
        why: 'writing / includes the state directory: its keys, config and the code of other plugins',
        fix: `carapace plugins remove ${id}, or grant it only $WORKSPACE or $PLUGIN_DATA`,
      });
    }
  }
  return findings;
};

function onPath(name: string, env: NodeJS.ProcessEnv): boolean {
  return (env.PATH ?? '').split(delimiter).some((dir) => dir !== '' && existsSync(join(dir, name)));
}

function toolEnabled(tool: string, policy: { allow?: string[]; deny?: string[] } | undefined): boolean {
  const allow = policy?.allow ?? ['*'];
  const deny = policy?.deny ?? [];
  return (allow.includes('*') || allow.includes(tool)) && !deny.includes(tool);
}

const execWithoutSandbox: Check = ({ config, env }) => {
  const agents = config.agents as { defaults?: { tools?: { allow?: string[]; deny?: string[] } }; list?: { id: string; tools?: { allow?: string[]; deny?: string[] } }[] };
  const enabledFor = [
    ...(toolEnabled('exec', agents.defaults?.tools) ? ['defaults'] : []),
    ...(agents.list ?? []).filter((a) => a.tools && toolEnabled('exec', a.tools)).map((a) => a.id),
  ];
  if (enabledFor.length === 0 || onPath('bwrap', env)) return [];
  return [{
    id: 'exec.no-sandbox',
    severity: 'warn',
    what: `the exec tool is enabled (${enabledFor.join(', ')}) but bubblewrap (bwrap) is not installed`,
    why: 'exec only ever runs inside a bubblewrap sandbox, so every exec call will fail until it is installed',
    fix: 'install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap), or turn exec off: carapace config set agents.defaults.tools.deny \'["exec"]\'',
  }];
};

// Isolates are the first wall around plugins; bubblewrap around the process that
// holds them is the second (core/plugins/confine.ts).
const sandboxHostUnconfined: Check = ({ env }) => {
  if (process.platform !== 'linux') return [];
  const why = 'should a plugin ever escape its isolate, it would reach the network and every file this user can read, the secrets store among them';
  const bwrap = findBwrap(env);
  if (!bwrap) {
    return [{ id: 'plugins.sandbox-unconfined', severity: 'warn', what: 'bubblewrap (bwrap) is not installed, so the process that runs plugin isolates has no OS confinement', why, fix: 'install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) and restart the gateway' }];
  }
  // Installed is not enough: a container's seccomp profile or a kernel without user namespaces stops it.
  const probe = spawnSync(bwrap, ['--unshare-all', '--die-with-parent', '--ro-bind', '/', '/', '--', '/bin/true'], { encoding: 'utf8', timeout: 10_000, env: { PATH: '/usr/bin:/bin' } });
  if (probe.status === 0) return [];
  const detail = (probe.stderr ?? '').trim().split('\n')[0] || probe.error?.message || `exit ${probe.status ?? probe.signal}`;
  return [{
    id: 'plugins.sandbox-unconfined',
    severity: 'warn',
    what: `bubblewrap is installed but cannot create its sandbox here (${detail}), so the process that runs plugin isolates has no OS confinement`,
    why,
    fix: 'allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0), or in a container a seccomp profile that permits them; then restart the gateway',
  }];
};

const STALE_PAIRING_MS = 24 * 3600_000;

function openReadOnly(paths: HomePaths): Database.Database | null {
  if (!existsSync(paths.db)) return null;
  return new Database(paths.db, { readonly: true, fileMustExist: true, timeout: 5000 });
}

const stalePairingRequests: Check = ({ paths, now }) => {
  let db: Database.Database | null = null;
  try {
    db = openReadOnly(paths);
    if (!db) return [];
    // The devices module (bus) owns this table; a home from before it existed has none.
    if (!db.prepare("SELECT 1 FROM sqlite_master WHERE type='table' AND name='device_pairing_requests'").get()) return [];
    const t = now ?? Date.now();
    const stale = db.prepare('SELECT code, created_at FROM device_pairing_requests WHERE expires_at < ? OR created_at < ? ORDER BY created_at').all(t, t - STALE_PAIRING_MS) as { code: string; created_at: number }[];
    if (stale.length === 0) return [];
    return [{
      id: 'pairing.stale',
      severity: 'warn',
      what: `${stale.length} device pairing request(s) have waited unanswered (oldest from ${new Date(stale[0].created_at).toISOString()})`,
      why: 'a request nobody expected may be someone probing the gateway; one left pending can be approved by mistake later',
      fix: `carapace devices pending, then carapace devices reject CODE (codes: ${stale.slice(0, 5).map((s) => s.code).join(', ')})`,
    }];
  } catch {
    return []; // an unreadable database is the integrity check's finding
  } finally {
    db?.close();
  }
};

const databaseIntegrity: Check = ({ paths }) => {
  let db: Database.Database | null = null;
  let problem: string | null = null;
  try {
    db = openReadOnly(paths);
    if (!db) return [];
    const rows = db.pragma('quick_check') as { quick_check: string }[];
    const result = rows.map((r) => r.quick_check);
    if (result.join() !== 'ok') problem = result.slice(0, 3).join('; ');
  } catch (err) {
    problem = (err as Error).message;
  } finally {
    db?.close();
  }
  if (!problem) return [];
  return [{
    id: 'db.corrupt',
    severity: 'error',
    what: `${paths.db} fails its integrity check: ${problem}`,
    why: 'a damaged database can lose or garble sessions, queued messages and the audit log',
    fix: 'stop the gateway and restore the last good backup: carapace restore FILE --force',
  }];
};

const DEFAULT_MIN_FREE = 1024 ** 3;

const lowDisk: Check = ({ paths, minFreeBytes }) => {
  const dir = existsSync(paths.root) ? paths.root : join(paths.root, '..');
  if (!existsSync(dir)) return [];
  const st = statfsSync(dir);
  const free = st.bavail * st.bsize;
  const min = minFreeBytes ?? DEFAULT_MIN_FREE;
  if (free >= min) return [];
  const mib = (n: number) => `${Math.floor(n / 1024 ** 2)} MiB`;
  return [{
    id: 'disk.low',
    severity: free < min / 4 ? 'error' : 'warn',
    what: `only ${mib(free)} free on the filesystem of ${paths.root} (doctor warns below ${mib(min)})`,
    why: 'SQLite needs room to write its journal; on a full disk, messages and audit entries fail to commit',
    fix: 'free space on that filesystem (old logs in logs/, old backups), or move the home to a larger disk',
  }];
};

const tlsKeyReadable: Check = ({ config, paths }) => {
  const key = config.gateway.tls?.key;
  if (!key) return [];
  const path = resolve(paths.root, key);
  let mode: number;
  try {
    mode = statSync(path).mode & 0o777;
  } catch {
    return []; // an unreadable key stops the gateway's start, with the reason
  }
  if ((mode & 0o077) === 0) return [];
  return [{
    id: 'tls.key.readable',
    severity: 'warn',
    what: `the TLS private key ${path} is readable by others (mode ${mode.toString(8)})`,
    why: "anyone who can read it can impersonate the gateway to your devices",
    fix: `chmod 600 ${path}`,
  }];
};

/** Every check doctor runs, in report order. New checks are added here. */
export const checks: Check[] = [
  bindExposure,
  tlsKeyReadable,
  statePermissions,
  privateDirs,
  missingProvider,
  unresolvedCredentials,
  openDmPolicies,
  pluginRefusals,
  pluginPrivileges,
  execWithoutSandbox,
  sandboxHostUnconfined,
  stalePairingRequests,
  databaseIntegrity,
  lowDisk,
];

export function runChecks(ctx: DoctorContext): Finding[] {
  return checks.flatMap((check) => check(ctx));
}
