// A ModelClient that loads provider plugin modules in this process: for tests, the
// bench and tools that run without the plugin host. Each configured provider gets
// its own plugin instance; its `carapace` object holds only `net.webFetch` (with the
// `{{secret:NAME}}` substitution the kernel does) and the plugin's config.
import type { ProviderConfig } from '../config/config.ts';
import type { CapabilityApi, CompletionEvent, CompletionRequest, CompletionResult, ModelInfo } from '../plugin-api.ts';
import { envRefName } from '../secrets/source.ts';
import { ModelCallError, providerErrorOf, type ModelClient, type ModelRef } from './types.ts';

type ProviderInstance = {
  models(): ModelInfo[] | Promise<ModelInfo[]>;
  complete(request: CompletionRequest, onEvent: (e: CompletionEvent) => void, opts?: { signal?: AbortSignal }): Promise<CompletionResult>;
};
type ProviderModule = { createProvider(host: Pick<CapabilityApi, 'net' | 'config'>): ProviderInstance };

const MODULES: Record<string, () => Promise<ProviderModule>> = {
  anthropic: () => import('../../plugins/providers/anthropic/index.ts') as Promise<ProviderModule>,
  openai: () => import('../../plugins/providers/openai/index.ts') as Promise<ProviderModule>,
};

/** The plugin config a provider plugin gets for `providers.<id>` (the plugin host does the same mapping). */
export function providerPluginConfig(cfg: ProviderConfig): Record<string, unknown> {
  const key = cfg.apiKey;
  const secret = typeof key === 'object' && key ? key.secret : envRefName(key);
  return {
    baseUrl: cfg.baseUrl ?? null,
    apiKeySecret: secret,
    ...(cfg.authHeader ? { authHeader: cfg.authHeader } : {}),
    ...(cfg.timeoutMs ? { timeoutMs: cfg.timeoutMs } : {}),
    ...(cfg.models ? { models: cfg.models } : {}),
  };
}

export type WebFetch = NonNullable<CapabilityApi['net']['webFetch']>;

/** The kernel's substitution, for in-process use: `{{secret:NAME}}` in the URL and headers. */
export function secretFetch(resolve: (name: string) => string | undefined): WebFetch {
  const sub = (s: string) =>
    s.replace(/\{\{secret:([A-Za-z_][A-Za-z0-9_]*)\}\}/g, (_m, n: string) => {
      const v = resolve(n);
      if (v === undefined) throw new Error(`secret ${n} is not set`);
      return v;
    });
  return async (input, init = {}) => {
    const url = sub(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    const headers = new Headers(init.headers);
    headers.forEach((v, k) => headers.set(k, sub(v)));
    return fetch(url, { ...init, headers });
  };
}

export function createDirectModelClient(opts: { providers: Record<string, ProviderConfig>; webFetch: WebFetch }): ModelClient {
  const instances = new Map<string, Promise<ProviderInstance>>();
  const infoCache = new Map<string, ModelInfo>();

  function instance(provider: string): Promise<ProviderInstance> {
    let p = instances.get(provider);
    if (!p) {
      const cfg = opts.providers[provider];
      if (!cfg) throw new ModelCallError({ kind: 'bad_request', message: `no provider "${provider}" is configured` });
      const api = cfg.api ?? provider;
      const load = MODULES[api];
      if (!load) throw new ModelCallError({ kind: 'bad_request', message: `provider "${provider}" has an unknown api "${api}"` });
      p = load().then((m) => m.createProvider({ net: { webFetch: opts.webFetch } as CapabilityApi['net'], config: providerPluginConfig(cfg) }));
      instances.set(provider, p);
    }
    return p;
  }

  return {
    async modelInfo(ref: ModelRef) {
      const key = `${ref.provider}/${ref.model}`;
      let info = infoCache.get(key);
      if (!info) {
        const list = await (await instance(ref.provider)).models();
        info = lookupModel(list, ref.model);
        infoCache.set(key, info);
      }
      return info;
    },
    async complete(ref, request, onEvent, signal) {
      try {
        return await (await instance(ref.provider)).complete(request, onEvent, { signal });
      } catch (err) {
        throw new ModelCallError(providerErrorOf(err));
      }
    },
  };
}

/** Exact id, else the longest known id it starts with (dated ids), else conservative defaults. */
export function lookupModel(models: ModelInfo[], id: string): ModelInfo {
  const exact = models.find((m) => m.id === id);
  if (exact) return exact;
  const prefix = models.filter((m) => id.startsWith(m.id)).sort((a, b) => b.id.length - a.id.length)[0];
  return prefix ? { ...prefix, id } : { id, contextWindow: 128_000, maxTokens: 8_192 };
}
