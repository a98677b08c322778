import type { Config, ProviderConfig } from '../config/config.ts';

/**
 * The providers in effect: those in config.json, else one picked from the
 * environment (config.md "Defaults with nothing configured").
 */
export function effectiveProviders(config: Config, env: NodeJS.ProcessEnv = process.env): Record<string, ProviderConfig> {
  if (Object.keys(config.providers).length > 0) return config.providers;
  const found: Record<string, ProviderConfig> = {};
  if (env.ANTHROPIC_API_KEY) found.anthropic = { api: 'anthropic', apiKey: '${ANTHROPIC_API_KEY}', baseUrl: env.ANTHROPIC_BASE_URL ?? null };
  if (env.OPENAI_API_KEY || env.OPENAI_BASE_URL) {
    found.openai = { api: 'openai', apiKey: env.OPENAI_API_KEY ? '${OPENAI_API_KEY}' : null, baseUrl: env.OPENAI_BASE_URL ?? null };
  }
  return found;
}

export const NO_PROVIDER_HELP =
  'No LLM provider is configured. Set ANTHROPIC_API_KEY or OPENAI_API_KEY (or OPENAI_BASE_URL for a local Ollama, e.g. http://127.0.0.1:11434/v1) and restart, or add one under "providers" in config.json.';
