// Models this plugin knows out of the box: context window, output cap and list
// price (USD per million tokens). `providers.<id>.models` in config adds or
// overrides entries (e.g. an Anthropic-compatible endpoint's own models).
import type { ModelInfo } from '../../../core/plugin-api.ts';

const cache = (input: number, output: number) => ({ input, output, cacheRead: input / 10, cacheWrite: input * 1.25 });
const claude = (id: string, maxTokens: number, input: number, output: number): ModelInfo => ({
  id,
  contextWindow: 200_000,
  maxTokens,
  input: ['text', 'image'],
  price: cache(input, output),
});

// Newer ids first so a dated id matches its own family by prefix.
export const CATALOG: ModelInfo[] = [
  claude('claude-opus-4-6', 64_000, 5, 25),
  claude('claude-sonnet-4-6', 64_000, 3, 15),
  claude('claude-opus-4-5', 64_000, 5, 25),
  claude('claude-opus-4-1', 32_000, 15, 75),
  claude('claude-opus-4', 32_000, 15, 75),
  claude('claude-sonnet-4-5', 64_000, 3, 15),
  claude('claude-sonnet-4', 64_000, 3, 15),
  claude('claude-3-7-sonnet', 64_000, 3, 15),
  claude('claude-haiku-4-5', 64_000, 1, 5),
  claude('claude-3-5-haiku', 8_192, 0.8, 4),
];

/** What an unknown model on an Anthropic-compatible endpoint is assumed to be. */
export const UNKNOWN: Omit<ModelInfo, 'id'> = { contextWindow: 200_000, maxTokens: 8_192, input: ['text'] };
