import { openSync, writeSync, closeSync, readFileSync, unlinkSync, existsSync, linkSync, writeFileSync } from 'node:fs';
import type { HomePaths } from '../home.ts';
import { writeFileAtomic } from '../home.ts';

export interface RunInfo {
  pid: number;
  port: number;
  bind: string;
  host: string;
  startedAt: number;
  version: string;
  /** Served over TLS (gateway.tls): https and wss with this certificate (its path and SHA-256 fingerprint). */
  tls?: { cert: string; sha256: string };
}

export class LockError extends Error {
  readonly holderPid: number | null;
  constructor(message: string, holderPid: number | null) {
    super(message);
    this.name = 'LockError';
    this.holderPid = holderPid;
  }
}

export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readPid(path: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
    return Number.isFinite(pid) ? pid : null;
  } catch {
    return null;
  }
}

/**
 * Take run/lock for this process's lifetime: created exclusively (O_EXCL), so two
 * gateways on one home can never both win. A lock left by a dead process is taken over.
 * `waitMs`: a CLI verb holding it for a moment is waited for that long; a gateway never is.
 */
export function acquireLock(paths: HomePaths, opts: { waitMs?: number } = {}): () => void {
  const gateway = (holder: number) => readRunInfo(paths)?.pid === holder;
  return holdLockFile(paths.lock, {
    waitMs: opts.waitMs,
    waitFor: (holder) => !gateway(holder),
    busy: (holder) =>
      gateway(holder)
        ? `another gateway (pid ${holder}) is already running on ${paths.root}; stop it first or use a different --home`
        : `another carapace process (pid ${holder}: a gateway starting, or a command changing this home) holds ${paths.lock}; try again in a moment`,
  });
}

/**
 * An exclusive lock file holding its owner's pid (O_EXCL; a dead owner's is taken
 * over). A live holder is waited for up to `waitMs` (while `waitFor` says so), then
 * refused with `busy`'s message.
 */
export function holdLockFile(file: string, opts: { waitMs?: number; waitFor?: (holder: number) => boolean; busy: (holder: number) => string }): () => void {
  const deadline = Date.now() + (opts.waitMs ?? 0);
  for (;;) {
    try {
      return takeLockFile(file, opts.busy);
    } catch (err) {
      const holder = err instanceof LockError ? err.holderPid : null;
      if (holder === null || Date.now() >= deadline || opts.waitFor?.(holder) === false) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
}

/**
 * Create `file` holding this process's pid, or fail with EEXIST. It appears with
 * its content (a hard link of a finished file): created empty and written after,
 * another process could read no pid in between, take the lock for stale and
 * remove it — two holders (8 concurrent `secrets set` lost one that way).
 */
function createWithPid(file: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${process.pid}\n`, { mode: 0o600 });
  try {
    linkSync(tmp, file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
    // No hard links on this file system: exclusive create, then write.
    const fd = openSync(file, 'wx', 0o600);
    writeSync(fd, `${process.pid}\n`);
    closeSync(fd);
  } finally {
    unlinkSync(tmp);
  }
}

function takeLockFile(file: string, busy: (holder: number) => string): () => void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      createWithPid(file);
      return () => {
        if (readPid(file) === process.pid) unlinkSync(file);
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = readPid(file);
      if (holder !== null && holder !== process.pid && pidAlive(holder)) throw new LockError(busy(holder), holder);
      // Stale: the holder died without cleaning up.
      try {
        unlinkSync(file);
      } catch {
        // someone else took it over first; the next attempt decides
      }
    }
  }
  throw new LockError(`could not take the lock ${file}`, readPid(file));
}

export function writeRunInfo(paths: HomePaths, info: RunInfo): void {
  writeFileAtomic(paths.runInfo, JSON.stringify(info) + '\n', 0o600);
}

/** The running gateway of this home, or null when there is none (a stale file is ignored). */
export function readRunInfo(paths: HomePaths): RunInfo | null {
  if (!existsSync(paths.runInfo)) return null;
  try {
    const info = JSON.parse(readFileSync(paths.runInfo, 'utf8')) as RunInfo;
    return pidAlive(info.pid) ? info : null;
  } catch {
    return null;
  }
}

export function removeRunInfo(paths: HomePaths): void {
  try {
    const info = JSON.parse(readFileSync(paths.runInfo, 'utf8')) as RunInfo;
    if (info.pid === process.pid) unlinkSync(paths.runInfo);
  } catch {
    // already gone
  }
}
