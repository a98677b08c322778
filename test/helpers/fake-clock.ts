import type { Timers } from '../../core/timers.ts';

/** A Timers whose time moves only when the test says so; due callbacks run in time order. */
export class FakeClock implements Timers {
  #now: number;
  #seq = 0;
  readonly #pending = new Map<number, { at: number; fn: () => void }>();

  constructor(start: number | string | Date = Date.UTC(2025, 0, 6, 0, 0, 0)) {
    this.#now = new Date(start).getTime();
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): () => void {
    const id = ++this.#seq;
    this.#pending.set(id, { at: this.#now + Math.max(0, ms), fn });
    return () => this.#pending.delete(id);
  }

  get pendingTimers(): number {
    return this.#pending.size;
  }

  /** Move time forward, firing every timer that falls due (in order), letting promises settle between them. */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.#pending) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.#pending.delete(next[0]);
      this.#now = Math.max(this.#now, next[1].at);
      next[1].fn();
      await settle();
    }
    this.#now = end;
    await settle();
  }

  /** Jump to an absolute time (as `advance`). */
  async set(to: number | string | Date): Promise<void> {
    await this.advance(new Date(to).getTime() - this.#now);
  }
}

export async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r));
}
