// V8 collects garbage and flushes cold bytecode when allocation pushes it to, and
// an idle gateway allocates almost nothing: whatever start-up or the last burst of
// work left in the heap would stay resident for hours (~10 MB after start-up).
// Chrome runs a memory-reducing collection when a tab goes idle; Node wires no
// idle signal, so this does it: once the event loop has been busy and then idle
// for a whole window, one full last-resort collection here, and the same in every
// plugin thread and the sandbox process (their collectors). It needs the `gc`
// global, which the gateway's node flags expose (node-flags.ts); without it only
// the collectors run.
import { performance, type EventLoopUtilization } from 'node:perf_hooks';

const WINDOW_MS = 5_000;
/** Event-loop utilisation under which a window counts as idle. */
const IDLE_ELU = 0.01;

type Gc = (opts: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

const collectors = new Set<() => void>();
/** Work done off the main thread (a plugin call that finished) since the last window. */
let workOffThread = false;

/** A plugin call finished: its thread or process was busy even if this event loop was not. */
export function noteWork(): void {
  workOffThread = true;
}

/** Run `collect` whenever the gateway collects after going idle; returns its removal. */
export function addIdleCollector(collect: () => void): () => void {
  collectors.add(collect);
  return () => collectors.delete(collect);
}

export function startMemoryReducer(opts: { windowMs?: number } = {}): { stop(): void } {
  const gc = (globalThis as { gc?: Gc }).gc;
  let last: EventLoopUtilization = performance.eventLoopUtilization();
  let workSinceCollect = true; // start-up was work
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const idle = performance.eventLoopUtilization(now, last).utilization < IDLE_ELU && !workOffThread;
    last = now;
    workOffThread = false;
    if (!idle) {
      workSinceCollect = true;
    } else if (workSinceCollect) {
      workSinceCollect = false;
      for (const collect of collectors) {
        try {
          collect();
        } catch {
          // a plugin thread or the sandbox host going away meanwhile: nothing to collect there
        }
      }
      gc?.({ type: 'major', execution: 'sync', flavor: 'last-resort' });
      last = performance.eventLoopUtilization(); // the collection itself is not work
    }
  }, opts.windowMs ?? WINDOW_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
