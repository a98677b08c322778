// Shared by every bench: one JSON line per figure (bench.md), percentiles, RSS.
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';

export interface Figure {
  bench: string;
  metric: string;
  value: number;
  unit: string;
  baseline: number | null;
  ratio: number | null;
  /** How many samples the figure rests on, where it is a statistic. */
  samples?: number;
}

export type Report = (figure: Omit<Figure, 'ratio'> & { ratio?: number | null }) => void;

/** Print one figure as a JSON line; ratio = value / baseline unless given. */
export function makeReport(out: (line: string) => void = (l) => process.stdout.write(l + '\n')): Report {
  return (f) => {
    const ratio = f.ratio !== undefined ? f.ratio : f.baseline ? round(f.value / f.baseline) : null;
    out(JSON.stringify({ bench: f.bench, metric: f.metric, value: round(f.value), unit: f.unit, baseline: f.baseline === null ? null : round(f.baseline), ratio, ...(f.samples ? { samples: f.samples } : {}) }));
  };
}

export function round(n: number): number {
  return Math.abs(n) >= 100 ? Math.round(n * 10) / 10 : Math.round(n * 1000) / 1000;
}

/** Nearest-rank percentile of a sample (p in 0..100). */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = Float64Array.from(samples).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

/** Resident set size (bytes) of a process and all its descendants, from /proc (Linux) or ps. */
export function treeRss(rootPid: number): number {
  const pids = [rootPid, ...descendants(rootPid)];
  let total = 0;
  for (const pid of pids) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const m = /VmRSS:\s+(\d+) kB/.exec(status);
      if (m) total += Number(m[1]) * 1024;
    } catch {
      try {
        total += Number(execFileSync('ps', ['-o', 'rss=', '-p', String(pid)]).toString().trim()) * 1024;
      } catch {
        // exited meanwhile
      }
    }
  }
  return total;
}

/**
 * Proportional set size (bytes) of a process tree: shared pages (the node binary
 * mapped by the gateway and its sandbox host) are split between the processes
 * mapping them instead of being counted once per process as RSS does. Linux only;
 * null elsewhere.
 */
export function treePss(rootPid: number): number | null {
  let total = 0;
  for (const pid of [rootPid, ...descendants(rootPid)]) {
    try {
      const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
      if (m) total += Number(m[1]) * 1024;
    } catch {
      return null;
    }
  }
  return total;
}

/**
 * Physical memory (bytes) the process tree occupies: every resident page counted
 * once however many of its processes map it, as the kernel would free it if the
 * tree exited. The sum of RSS counts the node binary's pages once per process.
 * Reads page frame numbers from /proc/PID/pagemap, which Linux reveals to root
 * only; null otherwise.
 */
export function treeResidentUnique(rootPid: number): number | null {
  const frames = new Set<bigint>();
  for (const pid of [rootPid, ...descendants(rootPid)]) {
    let fd: number;
    try {
      fd = openSync(`/proc/${pid}/pagemap`, 'r');
    } catch {
      return null;
    }
    try {
      for (const line of readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
        const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
        if (!m || line.endsWith('[vsyscall]')) continue;
        const [lo, hi] = [BigInt('0x' + m[1]) / 4096n, BigInt('0x' + m[2]) / 4096n];
        const entries = Buffer.alloc(Number(hi - lo) * 8);
        readSync(fd, entries, 0, entries.length, Number(lo * 8n));
        for (let i = 0; i < entries.length; i += 8) {
          const e = entries.readBigUInt64LE(i);
          if (!(e >> 63n)) continue; // not present
          const pfn = e & ((1n << 55n) - 1n);
          if (pfn === 0n) return null; // frame numbers hidden: not root
          frames.add(pfn);
        }
      }
    } catch {
      return null;
    } finally {
      closeSync(fd);
    }
  }
  return frames.size * 4096;
}

function descendants(pid: number): number[] {
  try {
    const out = execFileSync('ps', ['-e', '-o', 'pid=,ppid=']).toString();
    const children = new Map<number, number[]>();
    for (const line of out.trim().split('\n')) {
      const [p, pp] = line.trim().split(/\s+/).map(Number);
      if (!children.has(pp)) children.set(pp, []);
      children.get(pp)!.push(p);
    }
    const result: number[] = [];
    const stack = [pid];
    while (stack.length) {
      for (const c of children.get(stack.pop()!) ?? []) {
        result.push(c);
        stack.push(c);
      }
    }
    return result;
  } catch {
    return [];
  }
}

export const MB = 1024 * 1024;
