import { spawn, type ChildProcess } from 'node:child_process';
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { existsSync, readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { BIN, exited } from './cli.ts';
import { record } from './artifacts.ts';
import { homePaths } from '../../core/home.ts';
import type { RunInfo } from '../../core/gateway/lock.ts';

export interface SpawnedGateway {
  child: ChildProcess;
  url: string;
  port: number;
  info: RunInfo;
  output(): string;
  /** SIGTERM and wait; returns the exit code. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** GET /healthz answers 200: over https, trusting only `ca` (the gateway's own certificate). */
export function healthy(url: string, ca?: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = (url.startsWith('https:') ? httpsGet : httpGet)(url, { ca, timeout: 5000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(false));
  });
}

/**
 * Start the real gateway (`carapace start`) as a child process on an ephemeral
 * loopback port and wait until run/gateway.json names it and /healthz answers.
 */
export async function spawnGateway(home: string, opts: { args?: string[]; env?: NodeJS.ProcessEnv; timeoutMs?: number; ca?: string } = {}): Promise<SpawnedGateway> {
  const child = spawn(process.execPath, [BIN, 'start', '--home', home, '--port', '0', ...(opts.args ?? [])], {
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  child.once('exit', () => record(`gateway ${home}`, out));
  const paths = homePaths(home);
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`gateway exited with ${child.exitCode} before it was ready:\n${out}`);
    if (existsSync(paths.runInfo)) {
      const info = JSON.parse(readFileSync(paths.runInfo, 'utf8')) as RunInfo;
      if (info.pid === child.pid) {
        const url = `${info.tls ? 'https' : 'http'}://127.0.0.1:${info.port}`;
        if (await healthy(`${url}/healthz`, opts.ca)) {
          return {
            child,
            url,
            port: info.port,
            info,
            output: () => out,
            stop: async (signal = 'SIGTERM') => {
              if (child.exitCode === null && child.signalCode === null) child.kill(signal);
              return exited(child);
            },
          };
        }
      }
    }
    await delay(25);
  }
  child.kill('SIGKILL');
  throw new Error(`gateway did not become ready:\n${out}`);
}
