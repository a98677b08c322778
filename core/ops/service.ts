import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../home.ts';
import { GATEWAY_ENV, GATEWAY_NODE_FLAGS } from '../gateway/node-flags.ts';

// Running the gateway as a per-user background service: a systemd *user* unit on
// Linux (no root needed; with `loginctl enable-linger` it runs without a login
// session, as on a Raspberry Pi), a launchd agent on macOS. The unit hardens what
// systemd can without root: the gateway may write only its home and its cache.

export type ServicePlatform = 'linux' | 'darwin';

export interface ServiceSpec {
  platform: ServicePlatform;
  /** systemd unit name (without .service) or launchd label. */
  name: string;
  node: string;
  bin: string;
  home: string;
}

export class ServiceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ServiceError';
  }
}

export const DEFAULT_UNIT = 'carapace';
export const DEFAULT_LABEL = 'ai.carapace.gateway';
export const BIN_PATH = fileURLToPath(new URL('../cli/bin.js', import.meta.url));

export function currentPlatform(): ServicePlatform {
  if (process.platform === 'linux' || process.platform === 'darwin') return process.platform;
  throw new ServiceError(`no service manager support on ${process.platform}: run "carapace start" under your own supervisor`);
}

export function defaultSpec(home: string, platform: ServicePlatform = currentPlatform()): ServiceSpec {
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 24) throw new ServiceError(`the service needs Node.js >= 24; this is ${process.version}`);
  return { platform, name: platform === 'linux' ? DEFAULT_UNIT : DEFAULT_LABEL, node: process.execPath, bin: BIN_PATH, home };
}

function checkPath(what: string, p: string): void {
  if (!isAbsolute(p)) throw new ServiceError(`${what} must be an absolute path, not ${p}`);
  if (/[\n\r\0]/.test(p)) throw new ServiceError(`${what} contains a line break or NUL`);
}

/** A word for a systemd setting: quoted, with specifier (%) and variable ($) characters escaped. */
function sdWord(text: string, exec = false): string {
  let t = text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/%/g, '%%');
  if (exec) t = t.replace(/\$/g, '$$$$');
  return `"${t}"`;
}

export function unitPath(name: string, env: NodeJS.ProcessEnv = process.env): string {
  const config = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(config, 'systemd', 'user', `${name}.service`);
}

export function plistPath(label: string): string {
  return join(homedir(), 'Library', 'LaunchAgents', `${label}.plist`);
}

export function renderUnit(spec: ServiceSpec): string {
  for (const [what, p] of [['node', spec.node], ['bin', spec.bin], ['home', spec.home]] as const) checkPath(what, p);
  // A home under /tmp would vanish behind the service's private /tmp.
  const privateTmp = !/^\/(var\/)?tmp(\/|$)/.test(spec.home);
  return `# Carapace gateway — written by "carapace service install"; remove with "carapace service uninstall".
[Unit]
Description=Carapace agent gateway (${spec.home.replace(/%/g, '%%')})
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart=${sdWord(spec.node, true)} ${GATEWAY_NODE_FLAGS.join(' ')} ${sdWord(spec.bin, true)} start
Environment=${sdWord(`CARAPACE_HOME=${spec.home}`)}
Environment="CARAPACE_COMPILE_CACHE=%C/carapace/compile-cache"
${Object.entries(GATEWAY_ENV).map(([k, v]) => `Environment=${sdWord(`${k}=${v}`)}\n`).join('')}Restart=on-failure
RestartSec=5
TimeoutStopSec=20
KillMode=mixed
UMask=0077
NoNewPrivileges=yes
PrivateTmp=${privateTmp ? 'yes' : 'no'}
ProtectSystem=strict
ProtectHome=read-only
ReadWritePaths=${sdWord(spec.home)}
CacheDirectory=carapace
ProtectKernelTunables=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes

[Install]
WantedBy=default.target
`;
}

function xml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function renderPlist(spec: ServiceSpec): string {
  for (const [what, p] of [['node', spec.node], ['bin', spec.bin], ['home', spec.home]] as const) checkPath(what, p);
  const s = (v: string) => `<string>${xml(v)}</string>`;
  return `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key>
  ${s(spec.name)}
  <key>ProgramArguments</key>
  <array>
    ${s(spec.node)}
    ${GATEWAY_NODE_FLAGS.map(s).join('\n    ')}
    ${s(spec.bin)}
    ${s('start')}
  </array>
  <key>EnvironmentVariables</key>
  <dict>
    <key>CARAPACE_HOME</key>
    ${s(spec.home)}
  </dict>
  <key>RunAtLoad</key>
  <true/>
  <key>KeepAlive</key>
  <dict>
    <key>SuccessfulExit</key>
    <false/>
  </dict>
  <key>ThrottleInterval</key>
  <integer>5</integer>
  <key>Umask</key>
  <integer>63</integer>
  <key>ProcessType</key>
  ${s('Background')}
  <key>StandardOutPath</key>
  ${s(join(spec.home, 'logs', 'launchd.out.log'))}
  <key>StandardErrorPath</key>
  ${s(join(spec.home, 'logs', 'launchd.err.log'))}
</dict>
</plist>
`;
}

export function render(spec: ServiceSpec): { path: string; text: string } {
  return spec.platform === 'linux'
    ? { path: unitPath(spec.name), text: renderUnit(spec) }
    : { path: plistPath(spec.name), text: renderPlist(spec) };
}

/** Parse a unit file back into sections of key → values (repeated keys keep every value). */
export function parseUnit(text: string): Record<string, Record<string, string[]>> {
  const out: Record<string, Record<string, string[]>> = {};
  let section: Record<string, string[]> | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const head = /^\[([^\]]+)\]$/.exec(line);
    if (head) {
      section = out[head[1]] ??= {};
      continue;
    }
    const eq = line.indexOf('=');
    if (!section || eq < 1) throw new ServiceError(`not a unit file line: ${line}`);
    (section[line.slice(0, eq)] ??= []).push(line.slice(eq + 1));
  }
  return out;
}

export interface ManagerResult {
  ok: boolean;
  /** What the user should run when the manager could not be reached from here. */
  manual: string[];
  detail?: string;
}

function run(cmd: string, args: string[]): { ok: boolean; out: string } {
  try {
    return { ok: true, out: execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 15_000 }) };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    return { ok: false, out: `${e.stdout ?? ''}${e.stderr ?? ''}`.trim() || e.message };
  }
}

function steps(spec: ServiceSpec, action: 'install' | 'uninstall'): [string, string[]][] {
  if (spec.platform === 'linux') {
    const unit = `${spec.name}.service`;
    return action === 'install'
      ? [['systemctl', ['--user', 'daemon-reload']], ['systemctl', ['--user', 'enable', '--now', unit]]]
      : [['systemctl', ['--user', 'disable', '--now', unit]]]; // daemon-reload follows the file's removal
  }
  const domain = `gui/${userInfo().uid}`;
  return action === 'install'
    ? [['launchctl', ['bootstrap', domain, plistPath(spec.name)]]]
    : [['launchctl', ['bootout', `${domain}/${spec.name}`]]];
}

function drive(spec: ServiceSpec, action: 'install' | 'uninstall', useManager: boolean): ManagerResult {
  const list = steps(spec, action);
  const manual = list.map(([c, a]) => [c, ...a].join(' '));
  if (!useManager) return { ok: false, manual, detail: 'left to you (--no-manager)' };
  for (const [cmd, args] of list) {
    const r = run(cmd, args);
    if (!r.ok) return { ok: false, manual, detail: r.out.split('\n')[0] };
  }
  return { ok: true, manual: [] };
}

export interface ManagerOptions {
  /** false: only write or remove the file, and say which commands to run. */
  useManager?: boolean;
}

export function installService(spec: ServiceSpec, opts: { force?: boolean } & ManagerOptions = {}): { path: string; manager: ManagerResult } {
  const { path, text } = render(spec);
  if (existsSync(path) && !opts.force) {
    const current = readFileSync(path, 'utf8');
    if (current !== text) throw new ServiceError(`${path} exists and differs (another home or an older Carapace); pass --force to replace it`);
  }
  writeFileAtomic(path, text, 0o644);
  return { path, manager: drive(spec, 'install', opts.useManager !== false) };
}

export function uninstallService(spec: ServiceSpec, opts: ManagerOptions = {}): { path: string; removed: boolean; manager: ManagerResult } {
  const { path } = render(spec);
  if (!existsSync(path)) return { path, removed: false, manager: { ok: true, manual: [] } };
  const manager = drive(spec, 'uninstall', opts.useManager !== false);
  rmSync(path, { force: true });
  if (spec.platform === 'linux' && opts.useManager !== false) run('systemctl', ['--user', 'daemon-reload']);
  return { path, removed: true, manager };
}

export interface ServiceStatus {
  platform: ServicePlatform;
  name: string;
  path: string;
  installed: boolean;
  /** The installed file is what this Carapace and home would write. */
  current: boolean;
  /** From the service manager, or null when it cannot be asked from here. */
  active: string | null;
}

export function serviceStatus(spec: ServiceSpec, opts: ManagerOptions = {}): ServiceStatus {
  const { path, text } = render(spec);
  const installed = existsSync(path);
  let active: string | null = null;
  if (installed && opts.useManager !== false) {
    if (spec.platform === 'linux') {
      const r = run('systemctl', ['--user', 'is-active', `${spec.name}.service`]);
      active = r.out && !/Failed to connect|not found|No such file/i.test(r.out) ? r.out.trim().split('\n')[0] : null;
    } else {
      const r = run('launchctl', ['print', `gui/${userInfo().uid}/${spec.name}`]);
      active = r.ok ? (/state = (\w+)/.exec(r.out)?.[1] ?? 'loaded') : null;
    }
  }
  return { platform: spec.platform, name: spec.name, path, installed, current: installed && readFileSync(path, 'utf8') === text, active };
}
