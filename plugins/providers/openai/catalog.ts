// Models this plugin knows out of the box: context window, output cap and list
// price (USD per million tokens). `providers.<id>.models` in config adds or
// overrides entries — local servers (Ollama, vLLM, llama.cpp) name their own.
import type { ModelInfo } from '../../../core/plugin-api.ts';

const gpt = (id: string, contextWindow: number, maxTokens: number, input: number, output: number, cacheRead: number): ModelInfo => ({
  id,
  contextWindow,
  maxTokens,
  input: ['text', 'image'],
  price: { input, output, cacheRead },
});

export const CATALOG: ModelInfo[] = [
  gpt('gpt-5', 400_000, 128_000, 1.25, 10, 0.125),
  gpt('gpt-5-mini', 400_000, 128_000, 0.25, 2, 0.025),
  gpt('gpt-5-nano', 400_000, 128_000, 0.05, 0.4, 0.005),
  gpt('gpt-4.1', 1_047_576, 32_768, 2, 8, 0.5),
  gpt('gpt-4.1-mini', 1_047_576, 32_768, 0.4, 1.6, 0.1),
  gpt('gpt-4.1-nano', 1_047_576, 32_768, 0.1, 0.4, 0.025),
  gpt('gpt-4o', 128_000, 16_384, 2.5, 10, 1.25),
  gpt('gpt-4o-mini', 128_000, 16_384, 0.15, 0.6, 0.075),
  gpt('o3', 200_000, 100_000, 2, 8, 0.5),
  gpt('o4-mini', 200_000, 100_000, 1.1, 4.4, 0.275),
];

/** What an unknown model (a local Ollama tag, a DeepSeek id...) is assumed to be. */
export const UNKNOWN: Omit<ModelInfo, 'id'> = { contextWindow: 128_000, maxTokens: 8_192, input: ['text'] };
