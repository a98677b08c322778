// The agent's ModelClient in the gateway: every model call goes to a provider
// plugin running in its worker sandbox, through the plugin host. The provider's
// config entry (`providers.<id>`) picks the plugin by wire format (`api`), and the
// host runs one instance of it per configured endpoint.
import type { ProviderConfig } from '../config/config.ts';
import type { CompletionEvent, CompletionRequest, CompletionResult, ModelInfo, ProviderErrorInfo } from '../plugin-api.ts';
import { ModelCallError, type ModelClient, type ModelRef } from '../agent/types.ts';
import { lookupModel } from '../agent/direct-models.ts';
import { CarapaceError } from '../errors.ts';

export interface ProviderHost {
  /** The id of the instance of plugin `pluginId` serving `providers.<providerId>`; throws CarapaceError when the plugin cannot serve it. */
  providerInstance(providerId: string, pluginId: string): string;
  models(instanceId: string): Promise<ModelInfo[]>;
  complete(instanceId: string, request: CompletionRequest, onEvent: (event: CompletionEvent) => void): Promise<CompletionResult>;
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
  // Per instance and its config: endpoints of one plugin may list different models
  // (`providers.<id>.models`), and an edited entry restarts its instance.
  const catalogs = new Map<string, Promise<ModelInfo[]>>();

  function instanceFor(ref: ModelRef): { instance: string; cfg: ProviderConfig } {
    const cfg = deps.providers()[ref.provider];
    if (!cfg) throw new ModelCallError({ kind: 'bad_request', message: `no provider "${ref.provider}" is configured (add providers.${ref.provider} to config.json or set its API key in the environment)` });
    const plugin = cfg.api ?? ref.provider;
    try {
      return { instance: deps.host.providerInstance(ref.provider, plugin), cfg };
    } catch (err) {
      if (!(err instanceof CarapaceError)) throw err;
      throw new ModelCallError({ kind: 'bad_request', message: `provider "${ref.provider}" needs the "${plugin}" provider plugin: ${err.message} (see carapace plugins list)` });
    }
  }

  return {
    async modelInfo(ref) {
      const { instance, cfg } = instanceFor(ref);
      const key = `${instance}\n${JSON.stringify(cfg)}`;
      let catalog = catalogs.get(key);
      if (!catalog) {
        catalog = deps.host.models(instance).catch((err: unknown) => {
          catalogs.delete(key);
          throw err;
        });
        catalogs.set(key, catalog);
      }
      return lookupModel(await catalog.catch(() => []), ref.model);
    },
    async complete(ref, request, onEvent, signal) {
      const { instance } = instanceFor(ref);
      if (signal?.aborted) throw new ModelCallError({ kind: 'aborted', message: 'the run was aborted' });
      const call = deps.host.complete(instance, { ...request, model: ref.model }, onEvent);
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
