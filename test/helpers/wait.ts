// Waiting in tests without fixed sleeps: either poll a probe (`until`) or be woken
// by the code under test (`signal`). Both fail with a message naming what was awaited.
import { setTimeout as delay } from 'node:timers/promises';

/** Poll until `probe` returns something truthy; that value is returned. */
export async function until<T>(what: string, probe: () => T | undefined | null | false, timeoutMs = 20_000, stepMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(stepMs);
  }
}

/** Waiters re-checked on every `notify()`: `wait` resolves with the probe's first truthy value. */
export function signal() {
  const waiters = new Set<() => void>();
  return {
    notify(): void {
      for (const w of [...waiters]) w();
    },
    wait<T>(probe: () => T | undefined | null | false, describe: () => string, timeoutMs = 10_000): Promise<T> {
      return new Promise((resolve, reject) => {
        const check = () => {
          const v = probe();
          if (!v) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(v);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(describe()));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
  };
}
