// V8 optimizes what runs hot, and start-up code runs hot exactly once: compiling the
// kernel's schemas, building routes, verifying manifests. Maglev and TurboFan on
// that code cost CPU while the gateway should be getting ready, and leave ~7 MB of
// the compilers' own machine code paged in. A personal gateway then answers a few
// messages an hour, for which the interpreter and the baseline compiler are plenty
// (Chrome's battery-saver and efficiency modes make the same trade). So every
// `carapace` process starts without the optimizing tiers (bin.js) and turns them on
// once it does sustained work — CPU of the whole process, plugin threads included,
// above a share of a core across a window: a burst of traffic to the gateway, a
// large re-index or a busy registry server is optimized within seconds. V8 reads these flags when it decides
// to tier up, so they can be flipped at runtime. Code it caches on disk (the compile
// cache) is only taken back under the same flags, which is why the short-lived CLI
// verbs run under them too: all of start-up then caches and finds code the same way.
import { setFlagsFromString } from 'node:v8';
import { flushCompileCache } from 'node:module';

const TIER_FLAG = /--(no-)?(turbofan|maglev|opt|max-opt|jitless|lite-mode)\b/;
let deferred = false;

/**
 * Turn the optimizing tiers off until restoreOptimizingJit(); false, doing nothing,
 * when the user chose tiers themselves (node flags or NODE_OPTIONS): theirs hold.
 */
export function deferOptimizingJit(execArgv: readonly string[] = process.execArgv, nodeOptions = process.env.NODE_OPTIONS ?? ''): boolean {
  if (deferred || [...execArgv, nodeOptions].some((flag) => TIER_FLAG.test(flag))) return deferred;
  setFlagsFromString('--no-turbofan');
  setFlagsFromString('--no-maglev');
  deferred = true;
  return true;
}

const onRestore: (() => void)[] = [];

/** Call `listener` when the optimizing tiers come back (the gateway logs it). */
export function whenOptimizingJitRestored(listener: () => void): void {
  onRestore.push(listener);
}

export function restoreOptimizingJit(): void {
  if (!deferred) return;
  // Code compiled so far is cached under the flags it was compiled with; what loads
  // from here on is cached under the others, and the next start compiles it afresh.
  flushCompileCache();
  deferred = false;
  setFlagsFromString('--turbofan');
  setFlagsFromString('--maglev');
  for (const listener of onRestore.splice(0)) listener();
}

export interface BusyOptions {
  /** How far back the CPU use is averaged. */
  windowMs?: number;
  /** How often it is sampled. */
  sampleMs?: number;
  /** The share of one core that counts as sustained work. */
  share?: number;
}

/** Call `onBusy` once, the first time the process's CPU use over a window reaches `share` of a core. */
export function whenBusy(onBusy: () => void, opts: BusyOptions = {}): { stop(): void } {
  const windowMs = opts.windowMs ?? 10_000;
  const sampleMs = opts.sampleMs ?? 2_000;
  const share = opts.share ?? 0.25;
  const cpuMicros = () => {
    const u = process.cpuUsage();
    return u.user + u.system;
  };
  const samples: { at: number; cpu: number }[] = [{ at: performance.now(), cpu: cpuMicros() }];
  const timer = setInterval(() => {
    const now = { at: performance.now(), cpu: cpuMicros() };
    samples.push(now);
    while (samples.length > 2 && now.at - samples[1].at >= windowMs) samples.shift();
    const first = samples[0];
    const elapsedMs = now.at - first.at;
    if (elapsedMs < windowMs) return;
    if ((now.cpu - first.cpu) / 1000 >= share * elapsedMs) {
      clearInterval(timer);
      onBusy();
    }
  }, sampleMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
