// From the kernel's config to a concrete embedder, shared by the plugin entry and the CLI.
//   memory.embedder: "local" (default: lexical hashing, no network), "local:<dims>",
//   "none" (BM25 only), or "<providerId>/<model>" — an OpenAI-compatible provider from
//   `providers` (api "openai"), e.g. "openai/text-embedding-3-small" or
//   "ollama/nomic-embed-text" with providers.ollama = {api:"openai", baseUrl:"http://127.0.0.1:11434/v1"}.
import { join } from 'node:path';
import { createLocalEmbedder } from './embedders/local.ts';
import { createOpenAiEmbedder, type HttpPost } from './embedders/openai.ts';
import type { Embedder } from './embedders/types.ts';

export interface RemoteEmbedderConfig {
  baseUrl: string;
  model: string;
  /** A literal key or a `{{secret:NAME}}` placeholder for the kernel to substitute. */
  apiKey?: string;
  dims?: number;
}

/** What the memory plugin reads from `carapace.config` (the host fills it from config.memory + providers). */
export interface MemoryPluginConfig {
  embedder?: string;
  hybrid?: { vectorWeight?: number; textWeight?: number };
  sessions?: boolean;
  remote?: RemoteEmbedderConfig | null;
  /** Real paths behind $WORKSPACE and $PLUGIN_DATA. */
  workspace?: string;
  dataDir?: string;
}

interface ProviderLike {
  api?: string;
  baseUrl?: string | null;
  apiKey?: { secret: string } | string | null;
}

export class EmbedderConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EmbedderConfigError';
  }
}

/** The memory db lives apart from carapace.db: it is derived, large, rebuildable, and needs the sqlite-vec extension. */
export function memoryDataDir(home: string): string {
  // The plugin host's $PLUGIN_DATA for the bundled `hybrid` plugin: the gateway's
  // worker and the offline CLI must open the same index.
  return join(home, 'plugins', 'hybrid', 'data');
}
export const INDEX_FILE = 'index.sqlite';

/**
 * Resolve `memory.embedder` against the providers table. `secretRef` decides how a
 * `{"secret":"NAME"}` key is handed on: the plugin passes a `{{secret:NAME}}`
 * placeholder (substituted by the kernel's net capability); the CLI reads the env.
 */
export function remoteFromSetting(
  setting: string,
  providers: Record<string, ProviderLike | undefined>,
  opts: { env?: NodeJS.ProcessEnv; secretRef?: (name: string) => string | undefined } = {},
): RemoteEmbedderConfig | null {
  if (setting === 'local' || setting === 'none' || /^local:\d+$/.test(setting)) return null;
  const slash = setting.indexOf('/');
  if (slash <= 0 || slash === setting.length - 1) {
    throw new EmbedderConfigError(`memory.embedder "${setting}" is not "local", "none" or "<provider>/<model>"`);
  }
  const id = setting.slice(0, slash);
  const model = setting.slice(slash + 1);
  const env = opts.env ?? process.env;
  const p = providers[id];
  if (!p && id !== 'openai') throw new EmbedderConfigError(`memory.embedder refers to provider "${id}", which is not in providers`);
  const api = p?.api ?? (id === 'openai' ? 'openai' : undefined);
  if (api !== 'openai') throw new EmbedderConfigError(`memory.embedder needs an OpenAI-compatible provider; providers.${id}.api is ${api ?? 'unset'}`);
  const baseUrl = p?.baseUrl ?? (id === 'openai' ? env.OPENAI_BASE_URL ?? 'https://api.openai.com/v1' : undefined);
  if (!baseUrl) throw new EmbedderConfigError(`providers.${id}.baseUrl is not set`);
  let apiKey: string | undefined;
  const key = p?.apiKey ?? (id === 'openai' ? { secret: 'OPENAI_API_KEY' } : null);
  if (typeof key === 'string') {
    const m = /^\$\{([A-Z0-9_]+)\}$/.exec(key);
    apiKey = m ? env[m[1]] : key;
  } else if (key && typeof key === 'object') {
    apiKey = opts.secretRef ? opts.secretRef(key.secret) : env[key.secret];
  }
  return { baseUrl, model, apiKey };
}

export function makeEmbedder(setting: string | undefined, remote: RemoteEmbedderConfig | null | undefined, post?: HttpPost): Embedder | null {
  const s = setting ?? 'local';
  if (s === 'none') return null;
  const local = /^local(?::(\d+))?$/.exec(s);
  if (local) return createLocalEmbedder({ dims: local[1] ? Math.min(4096, Math.max(16, Number(local[1]))) : undefined });
  if (!remote) throw new EmbedderConfigError(`memory.embedder "${s}" needs a provider endpoint`);
  return createOpenAiEmbedder({ ...remote, post });
}
