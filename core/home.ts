import { mkdirSync, chmodSync, writeFileSync, renameSync, openSync, closeSync, fsyncSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve, dirname } from 'node:path';

/** Where everything in the state directory lives (config.md "State directory"). */
export interface HomePaths {
  root: string;
  config: string;
  db: string;
  /** The signed audit chain head (core/audit.ts): detects deletion of the newest rows. */
  auditHead: string;
  identityDir: string;
  gatewayKey: string;
  ownerKey: string;
  secretsKey: string;
  secrets: string;
  trustDir: string;
  pluginsDir: string;
  workspace: string;
  logsDir: string;
  runDir: string;
  runInfo: string;
  lock: string;
}

export function resolveHome(explicit?: string): string {
  const dir = explicit ?? process.env.CARAPACE_HOME ?? join(homedir(), '.carapace');
  return resolve(dir);
}

export function homePaths(root: string): HomePaths {
  return {
    root,
    config: join(root, 'config.json'),
    db: join(root, 'carapace.db'),
    auditHead: join(root, 'audit-head.json'),
    identityDir: join(root, 'identity'),
    gatewayKey: join(root, 'identity', 'gateway.json'),
    ownerKey: join(root, 'identity', 'owner.json'),
    secretsKey: join(root, 'identity', 'secrets.key'),
    secrets: join(root, 'secrets.enc'),
    trustDir: join(root, 'trust'),
    pluginsDir: join(root, 'plugins'),
    workspace: join(root, 'workspace'),
    logsDir: join(root, 'logs'),
    runDir: join(root, 'run'),
    runInfo: join(root, 'run', 'gateway.json'),
    lock: join(root, 'run', 'lock'),
  };
}

/** Create the state directory (0700) and its private subfolders. Idempotent. */
export function ensureHome(paths: HomePaths): void {
  mkdirSync(paths.root, { recursive: true, mode: 0o700 });
  chmodSync(paths.root, 0o700);
  for (const dir of [paths.identityDir, paths.runDir, paths.logsDir, paths.trustDir, paths.pluginsDir]) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  mkdirSync(paths.workspace, { recursive: true, mode: 0o700 });
}

/**
 * Write a file so that a crash leaves either the old or the new content, never a torn one:
 * write a sibling temp file, fsync it, rename over the target.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  writeFileSync(tmp, data, { mode });
  const fd = openSync(tmp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
