// The agent's ModelClient in the gateway: every model call goes to a provider
// plugin running in its worker sandbox, through the plugin host. The provider's
// config entry (`providers.<id>`) picks the plugin by wire format (`api`).
import type { ProviderConfig } from '../config/config.ts';
import type { CompletionEvent, CompletionRequest, CompletionResult, ModelInfo, ProviderErrorInfo } from '../plugin-api.ts';
import { ModelCallError, type ModelClient, type ModelRef } from '../agent/types.ts';
import { lookupModel } from '../agent/direct-models.ts';
import { providersByPlugin } from '../providers/detect.ts';

export interface ProviderHost {
  pluginsOf(kind: 'provider'): string[];
  models(pluginId: string): Promise<ModelInfo[]>;
  complete(pluginId: string, request: CompletionRequest, onEvent: (event: CompletionEvent) => void): Promise<CompletionResult>;
}

/** A failure from a sandboxed provider, as the agent's fallback logic needs it. */
export function classifyProviderError(err: unknown): ProviderErrorInfo {
  const e = err as { info?: ProviderErrorInfo; status?: number; retryAfterMs?: number; message?: string; name?: string } | null;
  if (e?.info?.kind) return e.info;
  const message = e?.message ?? String(err);
  const status = typeof e?.status === 'number' ? e.status : Number(/\b(4\d\d|5\d\d)\b/.exec(message)?.[1] ?? NaN);
  const base = { message, ...(Number.isFinite(status) ? { status } : {}), ...(e?.retryAfterMs ? { retryAfterMs: e.retryAfterMs } : {}) };
  if (e?.name === 'AbortError') return { ...base, kind: 'aborted' };
  if (status === 429 || /rate.?limit/i.test(message)) return { ...base, kind: 'rate_limit' };
  if (status === 529 || /overloaded/i.test(message)) return { ...base, kind: 'overloaded' };
  if (status >= 500) return { ...base, kind: 'server' };
  if (status === 401 || status === 403 || /authentication|api key/i.test(message)) return { ...base, kind: 'auth' };
  if (status >= 400) return { ...base, kind: 'bad_request' };
  if (/time(d)? ?out|timeout/i.test(message)) return { ...base, kind: 'timeout' };
  return { ...base, kind: 'network' };
}

export function createHostModelClient(deps: { host: ProviderHost; providers: () => Record<string, ProviderConfig> }): ModelClient {
  const catalogs = new Map<string, Promise<ModelInfo[]>>();

  function pluginFor(ref: ModelRef): string {
    const cfg = deps.providers()[ref.provider];
    if (!cfg) throw new ModelCallError({ kind: 'bad_request', message: `no provider "${ref.provider}" is configured (add providers.${ref.provider} to config.json or set its API key in the environment)` });
    const plugin = cfg.api ?? ref.provider;
    const owner = providersByPlugin(deps.providers()).get(plugin)?.providerId;
    if (owner !== ref.provider) {
      throw new ModelCallError({
        kind: 'bad_request',
        message: `provider "${ref.provider}" and provider "${owner}" both use the ${plugin} wire format; this version serves one endpoint per format (${owner} is in use)`,
      });
    }
    if (!deps.host.pluginsOf('provider').includes(plugin)) {
      throw new ModelCallError({ kind: 'bad_request', message: `provider "${ref.provider}" needs the "${plugin}" provider plugin, which is not installed or was refused (see carapace plugins list)` });
    }
    return plugin;
  }

  return {
    async modelInfo(ref) {
      const plugin = pluginFor(ref);
      let catalog = catalogs.get(plugin);
      if (!catalog) {
        catalog = deps.host.models(plugin).catch((err: unknown) => {
          catalogs.delete(plugin);
          throw err;
        });
        catalogs.set(plugin, catalog);
      }
      return lookupModel(await catalog.catch(() => []), ref.model);
    },
    async complete(ref, request, onEvent, signal) {
      const plugin = pluginFor(ref);
      if (signal?.aborted) throw new ModelCallError({ kind: 'aborted', message: 'the run was aborted' });
      const call = deps.host.complete(plugin, { ...request, model: ref.model }, onEvent);
      // The call cannot be cancelled across the sandbox boundary; an abort stops
      // waiting for it and the plugin's own timeout ends the request.
      const aborted = new Promise<never>((_, reject) => {
        signal?.addEventListener('abort', () => reject(new ModelCallError({ kind: 'aborted', message: 'the run was aborted' })), { once: true });
      });
      try {
        return await Promise.race([call, aborted]);
      } catch (err) {
        if (err instanceof ModelCallError) throw err;
        throw new ModelCallError(classifyProviderError(err));
      }
    },
  };
}
