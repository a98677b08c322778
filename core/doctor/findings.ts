import { existsSync, statSync, readdirSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/config.ts';
import type { HomePaths } from '../home.ts';
import { effectiveProviders, NO_PROVIDER_HELP } from '../providers/detect.ts';

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
}

export type Check = (ctx: DoctorContext) => Finding[];

const bindExposure: Check = ({ config }) => {
  const bind = config.gateway.bind;
  if (bind === 'loopback' || bind === '127.0.0.1' || bind === '::1') return [];
  if (config.gateway.tls) {
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

/** Every check doctor runs, in report order. New checks are added here. */
export const checks: Check[] = [bindExposure, statePermissions, missingProvider, openDmPolicies];

export function runChecks(ctx: DoctorContext): Finding[] {
  return checks.flatMap((check) => check(ctx));
}
