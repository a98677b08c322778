// A serial queue per session and a cap on sessions running at once: one
// session's messages are handled strictly in arrival order (a message arriving
// mid-run waits as a follow-up), while different sessions run side by side.
export class SessionQueues {
  readonly #maxConcurrent: number;
  readonly #sessions = new Map<string, (() => Promise<void>)[]>();
  readonly #running = new Set<string>();
  readonly #waiting: string[] = [];
  #active = 0;

  constructor(maxConcurrent: number) {
    this.#maxConcurrent = Math.max(1, maxConcurrent);
  }

  /** Queue a job for a session; it starts when the session's earlier jobs are done and a slot is free. */
  enqueue(sessionKey: string, job: () => Promise<void>): void {
    let q = this.#sessions.get(sessionKey);
    if (!q) this.#sessions.set(sessionKey, (q = []));
    q.push(job);
    if (!this.#running.has(sessionKey) && !this.#waiting.includes(sessionKey)) this.#waiting.push(sessionKey);
    this.#pump();
  }

  /** Jobs waiting (not running) for a session. */
  depth(sessionKey: string): number {
    return this.#sessions.get(sessionKey)?.length ?? 0;
  }

  get active(): number {
    return this.#active;
  }

  #pump(): void {
    while (this.#active < this.#maxConcurrent && this.#waiting.length) {
      const key = this.#waiting.shift()!;
      const q = this.#sessions.get(key);
      const job = q?.shift();
      if (!job) {
        this.#sessions.delete(key);
        continue;
      }
      this.#active++;
      this.#running.add(key);
      void job()
        .catch(() => {})
        .finally(() => {
          this.#active--;
          this.#running.delete(key);
          if (q!.length) this.#waiting.push(key);
          else this.#sessions.delete(key);
          this.#pump();
        });
    }
  }
}
