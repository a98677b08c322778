import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { BIN, exited } from './cli.ts';

export interface SpawnedRegistry {
  child: ChildProcess;
  url: string;
  output(): string;
  stop(): Promise<void>;
}

/** Start the real `carapace registry serve` on an ephemeral loopback port and wait for its ready line. */
export async function spawnRegistry(dataDir: string, home: string): Promise<SpawnedRegistry> {
  const child = spawn(process.execPath, [BIN, 'registry', 'serve', '--port', '0', '--data', dataDir, '--json', '--home', home], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stderr!.on('data', (d) => (out += d));
  const url = await new Promise<string>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`registry did not start:\n${out}${buf}`)), 30_000);
    child.stdout!.on('data', (d) => {
      buf += d;
      try {
        const doc = JSON.parse(buf) as { url: string };
        clearTimeout(timer);
        resolve(doc.url);
      } catch {
        // not the whole document yet
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`registry exited with ${code}:\n${out}${buf}`));
    });
  });
  return {
    child,
    url,
    output: () => out,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited(child);
    },
  };
}

/**
 * The real clawhub CLI, pinned as a devDependency (clawhub@0.23.3) so the
 * compatibility tests run offline and reproducibly from the lockfile.
 */
export const CLAWHUB_BIN = join(dirname(createRequire(import.meta.url).resolve('clawhub/package.json')), 'bin', 'clawdhub.js');

export interface ClawhubResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run clawhub with its global config isolated under `configPath` (never the user's ~/.config). */
export function runClawhub(args: string[], configPath: string): Promise<ClawhubResult> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, CLAWHUB_CONFIG_PATH: configPath, CLAWHUB_DISABLE_TELEMETRY: '1', NO_COLOR: '1', CI: '1' };
    for (const k of ['CLAWHUB_REGISTRY', 'CLAWDHUB_REGISTRY', 'CLAWHUB_WORKDIR', 'CLAWDHUB_WORKDIR', 'CLAWHUB_SITE']) delete env[k];
    const child = spawn(process.execPath, [CLAWHUB_BIN, '--no-input', ...args], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
