// The model fallback chain: try each model in order on rate limits, overload,
// server errors, timeouts and network failures; after a full pass fails, back off
// (exponential, jittered, honouring retry-after) and go round again. Auth and
// bad-request failures skip that model for the rest of the call. An abort stops at once.
import type { CompletionEvent, CompletionRequest, CompletionResult, ModelInfo, ProviderErrorInfo } from '../plugin-api.ts';
import { providerErrorOf, refString, type ModelClient, type ModelRef } from './types.ts';
import { defangDeep } from '../secrets/placeholder.ts';

export interface FallbackOptions {
  chain: ModelRef[];
  models: ModelClient;
  build(ref: ModelRef, info: ModelInfo): CompletionRequest;
  onEvent(e: CompletionEvent): void;
  signal: AbortSignal;
  sleep(ms: number, signal: AbortSignal): Promise<void>;
  random(): number;
  /** Passes over the whole chain before giving up (default 2). */
  rounds?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  onFailure?(ref: ModelRef, info: ProviderErrorInfo, next: ModelRef | null, delayMs: number): void;
}

export interface Attempt {
  model: string;
  error: ProviderErrorInfo;
}

export class AllModelsFailedError extends Error {
  readonly attempts: Attempt[];
  constructor(attempts: Attempt[]) {
    const last = new Map<string, ProviderErrorInfo>();
    for (const a of attempts) last.set(a.model, a.error);
    super(`No model could answer: ${[...last].map(([m, e]) => `${m}: ${e.message}`).join('; ')}`);
    this.name = 'AllModelsFailedError';
    this.attempts = attempts;
  }
}

export class RunAbortedError extends Error {
  constructor() {
    super('the run was aborted');
    this.name = 'RunAbortedError';
  }
}

const RETRYABLE = new Set(['rate_limit', 'overloaded', 'server', 'timeout', 'network']);

export async function completeWithFallback(o: FallbackOptions): Promise<{ result: CompletionResult; ref: ModelRef; info: ModelInfo }> {
  const rounds = o.rounds ?? 2;
  const base = o.baseDelayMs ?? 1000;
  const cap = o.maxDelayMs ?? 30_000;
  const attempts: Attempt[] = [];
  const dead = new Set<string>();
  for (let round = 0; round < rounds; round++) {
    let retryAfter = 0;
    const live = o.chain.filter((r) => !dead.has(refString(r)));
    for (let i = 0; i < live.length; i++) {
      const ref = live[i];
      if (o.signal.aborted) throw new RunAbortedError();
      let info: ModelInfo;
      try {
        info = await o.models.modelInfo(ref);
        // Nothing in the model's context may carry a live secret placeholder: the egress would fill it in.
        const result = await o.models.complete(ref, defangDeep(o.build(ref, info)), o.onEvent, o.signal);
        return { result, ref, info };
      } catch (err) {
        const e = providerErrorOf(err);
        if (e.kind === 'aborted' || o.signal.aborted) throw new RunAbortedError();
        attempts.push({ model: refString(ref), error: e });
        if (!RETRYABLE.has(e.kind)) dead.add(refString(ref));
        if (e.retryAfterMs) retryAfter = Math.max(retryAfter, e.retryAfterMs);
        const next = live[i + 1] ?? null;
        const delay = next ? 0 : round + 1 < rounds ? backoff(round, base, cap, retryAfter, o.random) : 0;
        o.onFailure?.(ref, e, next ?? (round + 1 < rounds ? (o.chain.find((r) => !dead.has(refString(r))) ?? null) : null), delay);
        if (!next && delay > 0 && o.chain.some((r) => !dead.has(refString(r)))) await o.sleep(delay, o.signal);
      }
    }
    if (o.chain.every((r) => dead.has(refString(r)))) break;
  }
  throw new AllModelsFailedError(attempts);
}

/** Exponential backoff with full jitter on top of a floor of the server's retry-after. */
export function backoff(round: number, base: number, cap: number, retryAfterMs: number, random: () => number): number {
  const exp = Math.min(cap, base * 2 ** round);
  return Math.min(cap, Math.max(retryAfterMs, exp / 2 + random() * (exp / 2)));
}
