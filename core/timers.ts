import type { Clock } from './clock.ts';

/**
 * A clock that can also wake you up: the scheduler and approval timeouts take
 * this instead of calling setTimeout, so tests drive them with a fake clock
 * (test/helpers/fake-clock.ts) and never sleep.
 */
export interface Timers extends Clock {
  /** Call `fn` once after `ms`; returns a cancel function. */
  setTimeout(fn: () => void, ms: number): () => void;
}

export const systemTimers: Timers = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    // Node caps timers at 2^31-1 ms; longer waits are re-armed by the caller's own loop.
    const t = setTimeout(fn, Math.max(0, Math.min(ms, 2 ** 31 - 1)));
    t.unref();
    return () => clearTimeout(t);
  },
};
