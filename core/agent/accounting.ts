// Token estimates and money: what the budgets and compaction decide on.
import type { ChatMessage, ModelInfo, Usage } from '../plugin-api.ts';

/** ~4 characters per token: a deliberate over-estimate for English and JSON. */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 3.5);
}

export function messageTokens(m: ChatMessage): number {
  let n = 4;
  for (const p of m.content) {
    if (p.type === 'text') n += estimateTokens(p.text);
    else if (p.type === 'tool_call') n += 12 + estimateTokens(typeof p.input === 'string' ? p.input : JSON.stringify(p.input ?? {}));
    else n += 8 + estimateTokens(p.content);
  }
  return n;
}

export function costUsd(usage: Usage, info: ModelInfo): number {
  const p = info.price;
  if (!p) return 0;
  return (
    (usage.inputTokens * p.input +
      usage.outputTokens * p.output +
      (usage.cacheReadTokens ?? 0) * (p.cacheRead ?? p.input) +
      (usage.cacheWriteTokens ?? 0) * (p.cacheWrite ?? p.input)) /
    1e6
  );
}

/** Tokens a step counts against `tokensPerRun`: everything processed except cheap cache reads. */
export function budgetTokens(usage: Usage): number {
  return usage.inputTokens + usage.outputTokens + (usage.cacheWriteTokens ?? 0);
}

/** Start of the UTC day containing `now` — the window of `usdPerDay`. */
export function dayStart(now: number): number {
  return now - (now % 86_400_000);
}
