/** Time as a dependency, so schedulers, expiries and backoff can be tested with a fake clock. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
