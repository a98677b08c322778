import { spawn, execFile } from 'node:child_process';
import { existsSync, realpathSync, statSync } from 'node:fs';
import { SAFE_PATH } from './command.ts';

// Running one argv under bubblewrap. The sandbox is the security boundary, not
// the Node process around it: read-only root, the workspace the only writable
// path, fresh PID/IPC/UTS/user/network namespaces (network only when granted),
// all capabilities dropped, no_new_privs (bwrap sets it), a fixed environment,
// the state directory hidden, killed with its whole namespace at the time limit.

export interface SandboxAvailability {
  ok: boolean;
  bwrap: string | null;
  /** Why exec is disabled, in words a user can act on. */
  reason?: string;
}

const probes = new Map<string, Promise<SandboxAvailability>>();

function findBwrap(): string | null {
  for (const dir of SAFE_PATH) {
    const p = `${dir}/bwrap`;
    if (existsSync(p)) return p;
  }
  return null;
}

/**
 * Whether bubblewrap exists and can create every namespace we ask for here.
 * Cached per binary. When it cannot, exec is disabled with the reason; it never
 * falls back to running unsandboxed.
 */
export function probeSandbox(bwrapPath?: string): Promise<SandboxAvailability> {
  const bwrap = bwrapPath ?? findBwrap();
  if (!bwrap) {
    return Promise.resolve({
      ok: false,
      bwrap: null,
      reason: 'exec is disabled: bubblewrap (bwrap) is not installed; install it (Debian/Ubuntu: apt-get install bubblewrap) to run commands in a sandbox',
    });
  }
  let p = probes.get(bwrap);
  if (!p) {
    p = new Promise((resolve) => {
      execFile(
        bwrap,
        ['--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc', '--unshare-all', '--die-with-parent', '--new-session', '--cap-drop', 'ALL', '--', '/bin/true'],
        { env: { PATH: SAFE_PATH.join(':') }, timeout: 10_000 },
        (err, _stdout, stderr) => {
          if (!err) return resolve({ ok: true, bwrap });
          const detail = String(stderr).trim().split('\n')[0] || (err as Error).message;
          resolve({
            ok: false,
            bwrap,
            reason: `exec is disabled: bubblewrap cannot create its sandbox here (${detail}); enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces > 0) or run in a container that allows them`,
          });
        },
      );
    });
    probes.set(bwrap, p);
  }
  return p;
}

export interface SandboxRun {
  /** Resolved program first. */
  argv: string[];
  workspace: string;
  network: boolean;
  timeoutMs: number;
  /** Per stream. */
  maxOutputBytes: number;
  /** Paths made invisible inside the sandbox (the state directory, secrets). */
  hide: string[];
  bwrap: string;
}

export interface SandboxResult {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  truncated: boolean;
  timedOut: boolean;
}

export function bwrapArgs(run: Omit<SandboxRun, 'bwrap' | 'timeoutMs' | 'maxOutputBytes'>): string[] {
  const ws = realpathSync(run.workspace);
  const args = ['--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp'];
  // Sockets of host daemons (docker, dbus) live here; a read-only bind still allows connect().
  for (const dir of ['/run', '/var/run']) {
    if (existsSync(dir) && realpathSync(dir) === dir) args.push('--tmpfs', dir);
  }
  for (const h of run.hide) {
    if (!existsSync(h)) continue;
    const real = realpathSync(h);
    if (statSync(real).isDirectory()) args.push('--tmpfs', real);
    else args.push('--ro-bind', '/dev/null', real);
  }
  // After the hides, so a workspace inside the hidden state directory stays visible.
  args.push('--bind', ws, ws, '--chdir', ws);
  args.push('--unshare-all');
  if (run.network) args.push('--share-net');
  args.push('--die-with-parent', '--new-session', '--cap-drop', 'ALL');
  args.push(
    '--clearenv',
    '--setenv', 'PATH', SAFE_PATH.join(':'),
    '--setenv', 'HOME', ws,
    '--setenv', 'TMPDIR', '/tmp',
    '--setenv', 'LANG', 'C.UTF-8',
    '--setenv', 'TERM', 'dumb',
  );
  args.push('--', ...run.argv);
  return args;
}

class Capture {
  readonly #chunks: Buffer[] = [];
  #size = 0;
  truncated = false;
  readonly max: number;
  constructor(max: number) {
    this.max = max;
  }
  push(chunk: Buffer): void {
    if (this.#size >= this.max) {
      this.truncated = true;
      return;
    }
    const room = this.max - this.#size;
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    if (part.length < chunk.length) this.truncated = true;
    this.#chunks.push(part);
    this.#size += part.length;
  }
  text(): string {
    return Buffer.concat(this.#chunks).toString('utf8');
  }
}

export function runSandboxed(run: SandboxRun): Promise<SandboxResult> {
  const args = bwrapArgs(run);
  return new Promise((resolve, reject) => {
    // detached: bwrap leads its own process group, so the time limit kills the group;
    // the sandboxed tree dies with it (PID namespace init gone, --die-with-parent).
    const child = spawn(run.bwrap, args, {
      env: { PATH: SAFE_PATH.join(':') },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const out = new Capture(run.maxOutputBytes);
    const err = new Capture(run.maxOutputBytes);
    let timedOut = false;
    const kill = (): void => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, run.timeoutMs);
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      kill(); // anything that escaped into the group (it cannot escape the namespace)
      resolve({
        exitCode: code,
        signal: signal ?? null,
        stdout: out.text(),
        stderr: err.text(),
        truncated: out.truncated || err.truncated,
        timedOut,
      });
    });
  });
}
