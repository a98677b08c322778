// Provider plugin for the Anthropic Messages API and compatible endpoints
// (MiniMax and others), runtime `worker`. Every request goes through
// `carapace.net.webFetch`, so the kernel enforces the host allowlist and swaps the
// `{{secret:NAME}}` placeholder for the key: this code never sees a credential.
// SDK retries are off: the agent owns retry and fallback across models.
import { createRequire } from 'node:module';
import type {
  CapabilityApi,
  ChatMessage,
  CompletionEvent,
  CompletionRequest,
  CompletionResult,
  ContentPart,
  ModelInfo,
  ProviderErrorInfo,
  ProviderPlugin,
  Usage,
} from '../../../core/plugin-api.ts';
import { CATALOG, UNKNOWN } from './catalog.ts';

// The SDK through its CommonJS build: imported as ES modules, its few hundred
// files would each keep a module record for the thread's life (2–3.5 MB more per
// provider thread, measured in a worker; BENCHMARKS.md).
const { Anthropic } = createRequire(import.meta.url)('@anthropic-ai/sdk') as typeof import('@anthropic-ai/sdk');

export interface AnthropicPluginConfig {
  baseUrl?: string | null;
  /** `x-api-key` (Anthropic) or `bearer` (`Authorization: Bearer`, some compatible endpoints). */
  authHeader?: 'x-api-key' | 'bearer';
  /** Name of the secret holding the key; the kernel substitutes it. Null: send no key. */
  apiKeySecret?: string | null;
  timeoutMs?: number;
  models?: Partial<ModelInfo>[];
}

export interface CompleteOptions {
  signal?: AbortSignal;
}

/** A provider failure classified for the agent's fallback decision. */
export class ProviderError extends Error {
  readonly info: ProviderErrorInfo;
  constructor(info: ProviderErrorInfo) {
    super(info.message);
    this.name = 'ProviderError';
    this.info = info;
  }
}

type Host = Pick<CapabilityApi, 'net' | 'config'>;

export function createProvider(host: Host): ProviderPlugin & {
  complete(request: CompletionRequest, onEvent: (e: CompletionEvent) => void, opts?: CompleteOptions): Promise<CompletionResult>;
} {
  const config = (host.config ?? {}) as AnthropicPluginConfig;
  const fetchImpl = host.net.webFetch;
  if (!fetchImpl) throw new Error('anthropic provider needs carapace.net.webFetch (worker runtime)');
  const timeoutMs = config.timeoutMs ?? 60_000;
  const key = config.apiKeySecret ? `{{secret:${config.apiKeySecret}}}` : null;
  const bearer = config.authHeader === 'bearer';
  // Exactly one credential is always passed: with none, the SDK would go looking in
  // the environment and in credential files, which a plugin must never read.
  const client = new Anthropic({
    ...(bearer && key ? { authToken: key, apiKey: null } : { apiKey: key ?? 'carapace-no-key', authToken: null }),
    // This SDK sends an apiKey as a Bearer token; Anthropic's documented header is
    // x-api-key, which compatible endpoints also expect. No key: no auth header at all.
    ...(bearer && key ? {} : { defaultHeaders: { ...(key ? { 'x-api-key': key } : {}), authorization: null } }),
    baseURL: config.baseUrl ?? 'https://api.anthropic.com',
    fetch: fetchImpl as never,
    maxRetries: 0,
    timeout: timeoutMs,
  });
  const models = mergeCatalog(CATALOG, config.models);

  return {
    models: () => models,
    async complete(request, onEvent, opts: CompleteOptions = {}) {
      const info = lookup(models, request.model);
      const idle = idleGuard(timeoutMs, opts.signal);
      try {
        const stream = await client.messages.create(toWire(request, info), { signal: idle.signal, timeout: timeoutMs });
        const result = await collect(stream as unknown as AsyncIterable<any>, onEvent, idle.touch);
        // The SDK ends an aborted stream quietly; a cut-off answer must not pass as complete.
        if (idle.signal.aborted) throw new Error('stream aborted');
        return result;
      } catch (err) {
        throw new ProviderError(classify(err, idle.timedOut(), opts.signal?.aborted ?? false));
      } finally {
        idle.clear();
      }
    },
  };
}

// ---------------------------------------------------------------- request

function toWire(req: CompletionRequest, info: ModelInfo): any {
  return {
    model: req.model,
    max_tokens: Math.min(req.maxTokens ?? info.maxTokens, info.maxTokens),
    stream: true,
    ...(req.system ? { system: req.system } : {}),
    ...(req.temperature !== undefined ? { temperature: req.temperature } : {}),
    ...(req.tools?.length ? { tools: req.tools.map((t) => ({ name: t.name, description: t.description, input_schema: t.input })) } : {}),
    messages: req.messages.map(messageToWire),
  };
}

function messageToWire(m: ChatMessage): { role: 'user' | 'assistant'; content: unknown[] } {
  const content = m.content.flatMap((p): unknown[] => {
    switch (p.type) {
      case 'text':
        return p.text ? [{ type: 'text', text: p.text }] : [];
      case 'tool_call':
        // A call whose arguments did not parse is replayed with empty input; its result says why.
        return [{ type: 'tool_use', id: p.id, name: p.name, input: isObject(p.input) ? p.input : {} }];
      case 'tool_result':
        return [{ type: 'tool_result', tool_use_id: p.toolCallId, content: p.content || '(empty)', ...(p.isError ? { is_error: true } : {}) }];
    }
  });
  return { role: m.role, content: content.length ? content : [{ type: 'text', text: '(empty)' }] };
}

// ---------------------------------------------------------------- response

async function collect(stream: AsyncIterable<any>, onEvent: (e: CompletionEvent) => void, touch: () => void): Promise<CompletionResult> {
  const parts: ContentPart[] = [];
  const json = new Map<number, string>();
  const blocks = new Map<number, ContentPart>();
  const usage: Usage = { inputTokens: 0, outputTokens: 0 };
  let stop: string | null = null;
  for await (const ev of stream) {
    touch();
    switch (ev.type) {
      case 'message_start': {
        const u = ev.message?.usage ?? {};
        usage.inputTokens = u.input_tokens ?? 0;
        usage.outputTokens = u.output_tokens ?? 0;
        if (u.cache_read_input_tokens) usage.cacheReadTokens = u.cache_read_input_tokens;
        if (u.cache_creation_input_tokens) usage.cacheWriteTokens = u.cache_creation_input_tokens;
        break;
      }
      case 'content_block_start': {
        const b = ev.content_block;
        if (b.type === 'text') {
          const part: ContentPart = { type: 'text', text: b.text ?? '' };
          blocks.set(ev.index, part);
          parts.push(part);
          if (b.text) onEvent({ type: 'text', delta: b.text });
        } else if (b.type === 'tool_use') {
          const part: ContentPart = { type: 'tool_call', id: b.id, name: b.name, input: {} };
          blocks.set(ev.index, part);
          parts.push(part);
          json.set(ev.index, '');
          onEvent({ type: 'tool_call_start', id: b.id, name: b.name });
        }
        break;
      }
      case 'content_block_delta': {
        const part = blocks.get(ev.index);
        if (!part) break;
        if (ev.delta.type === 'text_delta' && part.type === 'text') {
          part.text += ev.delta.text;
          onEvent({ type: 'text', delta: ev.delta.text });
        } else if (ev.delta.type === 'input_json_delta' && part.type === 'tool_call') {
          json.set(ev.index, json.get(ev.index)! + ev.delta.partial_json);
          onEvent({ type: 'tool_call_delta', id: part.id, partialJson: ev.delta.partial_json });
        }
        break;
      }
      case 'content_block_stop': {
        const part = blocks.get(ev.index);
        if (part?.type === 'tool_call') part.input = parseArguments(json.get(ev.index) ?? '');
        break;
      }
      case 'message_delta':
        if (ev.delta?.stop_reason) stop = ev.delta.stop_reason;
        if (ev.usage?.output_tokens !== undefined) usage.outputTokens = ev.usage.output_tokens;
        if (ev.usage?.input_tokens) usage.inputTokens = ev.usage.input_tokens;
        break;
    }
  }
  const content = parts.filter((p) => p.type !== 'text' || p.text !== '');
  return { message: { role: 'assistant', content }, stopReason: mapStop(stop, content), usage };
}

/** Arguments that are not valid JSON come back as the raw string: the agent tells the model. */
function parseArguments(raw: string): unknown {
  if (raw.trim() === '') return {};
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

function mapStop(stop: string | null, content: ContentPart[]): CompletionResult['stopReason'] {
  switch (stop) {
    case 'tool_use':
      return 'tool_use';
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'max_tokens';
    case 'refusal':
      return 'refusal';
    default:
      return content.some((p) => p.type === 'tool_call') ? 'tool_use' : 'end';
  }
}

// ---------------------------------------------------------------- errors & timeouts

/** Abort when the stream is silent for `ms` (the SDK's timeout only covers the headers). */
function idleGuard(ms: number, outer?: AbortSignal) {
  const ctl = new AbortController();
  let fired = false;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      fired = true;
      ctl.abort();
    }, ms);
  };
  const onOuter = () => ctl.abort();
  if (outer?.aborted) ctl.abort();
  else outer?.addEventListener('abort', onOuter, { once: true });
  arm();
  return {
    signal: ctl.signal,
    touch: arm,
    timedOut: () => fired,
    clear: () => {
      clearTimeout(timer);
      outer?.removeEventListener('abort', onOuter);
    },
  };
}

export function classify(err: unknown, idleTimedOut: boolean, callerAborted: boolean): ProviderErrorInfo {
  if (callerAborted) return { kind: 'aborted', message: 'the request was aborted' };
  if (idleTimedOut || err instanceof Anthropic.APIConnectionTimeoutError) return { kind: 'timeout', message: 'the provider did not answer in time' };
  if (err instanceof Anthropic.APIUserAbortError) return { kind: 'aborted', message: 'the request was aborted' };
  if (err instanceof Anthropic.APIError && typeof err.status === 'number') {
    const status = err.status;
    const body = (err.error ?? {}) as { error?: { type?: string; message?: string } };
    const detail = body.error?.message ?? err.message;
    const type = body.error?.type;
    const retryAfterMs = retryAfter(err.headers);
    if (status === 429) return { kind: 'rate_limit', status, message: `rate limited: ${detail}`, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
    if (status === 529 || type === 'overloaded_error') return { kind: 'overloaded', status, message: `overloaded: ${detail}`, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
    if (status === 401 || status === 403) return { kind: 'auth', status, message: `authentication failed: ${detail}` };
    if (status === 408) return { kind: 'timeout', status, message: `request timeout: ${detail}` };
    if (status >= 500) return { kind: 'server', status, message: `server error ${status}: ${detail}` };
    return { kind: 'bad_request', status, message: `request refused (${status}): ${detail}` };
  }
  if (err instanceof Anthropic.APIConnectionError) return { kind: 'network', message: `cannot reach the provider: ${err.message}` };
  const e = err as { name?: string; message?: string };
  if (e?.name === 'AbortError') return { kind: 'aborted', message: 'the request was aborted' };
  // A broken stream mid-response (connection reset, invalid SSE) is a network failure.
  return { kind: 'network', message: `provider stream failed: ${e?.message ?? String(err)}` };
}

function retryAfter(headers: Headers | undefined): number | undefined {
  if (!headers) return undefined;
  const ms = Number(headers.get('retry-after-ms'));
  if (headers.get('retry-after-ms') && Number.isFinite(ms)) return Math.max(0, ms);
  const raw = headers.get('retry-after');
  if (!raw) return undefined;
  const s = Number(raw);
  if (Number.isFinite(s)) return Math.max(0, s * 1000);
  const date = Date.parse(raw);
  return Number.isFinite(date) ? Math.max(0, date - Date.now()) : undefined;
}

// ---------------------------------------------------------------- catalog

export function mergeCatalog(base: ModelInfo[], overrides: Partial<ModelInfo>[] | undefined): ModelInfo[] {
  const out = new Map(base.map((m) => [m.id, m]));
  for (const o of overrides ?? []) {
    if (typeof o.id !== 'string') continue;
    const prev = out.get(o.id) ?? lookup(base, o.id);
    out.set(o.id, { ...prev, ...o, id: o.id } as ModelInfo);
  }
  return [...out.values()];
}

/** Exact id, else the longest known id it starts with (dated ids), else the defaults. */
function lookup(models: ModelInfo[], id: string): ModelInfo {
  const exact = models.find((m) => m.id === id);
  if (exact) return exact;
  const prefix = models.filter((m) => id.startsWith(m.id)).sort((a, b) => b.id.length - a.id.length)[0];
  return prefix ? { ...prefix, id } : { ...UNKNOWN, id };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// ---------------------------------------------------------------- worker entry

let instance: ReturnType<typeof createProvider> | null = null;
function self(): ReturnType<typeof createProvider> {
  const host = (globalThis as { carapace?: Host }).carapace;
  if (!host) throw new Error('no carapace capability object in this runtime');
  return (instance ??= createProvider(host));
}

export function models(): ModelInfo[] {
  return self().models() as ModelInfo[];
}

export function complete(request: CompletionRequest, onEvent: (e: CompletionEvent) => void, opts?: CompleteOptions): Promise<CompletionResult> {
  return self().complete(request, onEvent, opts);
}
