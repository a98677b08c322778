// Abuse limits of the bus endpoint (protocol.md "Abuse limits", "Limits"), as
// numbers in one place and the failure counter that locks a source out.
import type { Clock } from '../clock.ts';

/** The limits config.json sets (gateway.limits, with their defaults in config.ts); read at each use. */
export type ConfigurableLimit = 'maxInflight' | 'sendBufferBytes' | 'maxSockets';

export interface BusLimits {
  preAuthMaxPayload: number;
  handshakeTimeoutMs: number;
  maxUnauthenticatedPerIp: number;
  maxSockets: number;
  failuresPerWindow: number;
  failureWindowMs: number;
  lockoutMs: number;
  maxRejectedFrames: number;
  maxInflight: number;
  sendBufferBytes: number;
  heartbeatMs: number;
}

export const DEFAULT_LIMITS: Omit<BusLimits, ConfigurableLimit> = {
  preAuthMaxPayload: 64 * 1024,
  handshakeTimeoutMs: 10_000,
  maxUnauthenticatedPerIp: 32,
  failuresPerWindow: 10,
  failureWindowMs: 60_000,
  lockoutMs: 5 * 60_000,
  maxRejectedFrames: 10,
  heartbeatMs: 15_000,
};

/** `::ffff:1.2.3.4` is the IPv4 client 1.2.3.4 and must share its limits. */
export function normalizeIp(ip: string | undefined): string {
  if (!ip) return 'unknown';
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return (m ? m[1] : ip).toLowerCase();
}

/**
 * Failed handshakes per source (`ip:…`, `origin:…`) in a sliding window; a source
 * that reaches the limit is locked out for lockoutMs, loopback included.
 */
export class FailureLimiter {
  readonly #failures = new Map<string, number[]>();
  readonly #lockedUntil = new Map<string, number>();
  readonly #limits: Pick<BusLimits, 'failuresPerWindow' | 'failureWindowMs' | 'lockoutMs'>;
  readonly #clock: Clock;

  constructor(limits: Pick<BusLimits, 'failuresPerWindow' | 'failureWindowMs' | 'lockoutMs'>, clock: Clock) {
    this.#limits = limits;
    this.#clock = clock;
  }

  /** Milliseconds until every given source may try again; 0 when none is locked. */
  lockedFor(sources: string[]): number {
    const now = this.#clock.now();
    let wait = 0;
    for (const s of sources) {
      const until = this.#lockedUntil.get(s);
      if (until === undefined) continue;
      if (until <= now) this.#lockedUntil.delete(s);
      else wait = Math.max(wait, until - now);
    }
    return wait;
  }

  fail(sources: string[]): void {
    const now = this.#clock.now();
    for (const s of sources) {
      const recent = (this.#failures.get(s) ?? []).filter((t) => now - t < this.#limits.failureWindowMs);
      recent.push(now);
      if (recent.length >= this.#limits.failuresPerWindow) {
        this.#lockedUntil.set(s, now + this.#limits.lockoutMs);
        this.#failures.delete(s);
      } else this.#failures.set(s, recent);
    }
  }

  /** Forget what no longer matters (called on the heartbeat) so the maps stay bounded. */
  prune(): void {
    const now = this.#clock.now();
    for (const [s, times] of this.#failures) if (times.every((t) => now - t >= this.#limits.failureWindowMs)) this.#failures.delete(s);
    for (const [s, until] of this.#lockedUntil) if (until <= now) this.#lockedUntil.delete(s);
  }

  lockedSources(): number {
    return this.#lockedUntil.size;
  }
}
