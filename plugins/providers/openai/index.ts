// Provider plugin for the OpenAI Chat Completions API and compatible servers
// (OpenAI, Ollama, DeepSeek, vLLM, llama.cpp, OpenRouter), runtime `worker`. Every
// request goes through `carapace.net.webFetch`, so the kernel enforces the host
// allowlist and swaps the `{{secret:NAME}}` placeholder for the key: this code
// never sees a credential. SDK retries are off: the agent owns fallback.
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
const { OpenAI } = createRequire(import.meta.url)('openai') as typeof import('openai');

export interface OpenAIPluginConfig {
  baseUrl?: string | null;
  /** Name of the secret holding the key; the kernel substitutes it. Null: keyless (local servers). */
  apiKeySecret?: string | null;
  timeoutMs?: number;
  models?: Partial<ModelInfo>[];
}

export interface CompleteOptions {
  signal?: AbortSignal;
}

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
  const config = (host.config ?? {}) as OpenAIPluginConfig;
  const fetchImpl = host.net.webFetch;
  if (!fetchImpl) throw new Error('openai provider needs carapace.net.webFetch (worker runtime)');
  const timeoutMs = config.timeoutMs ?? 60_000;
  const client = new OpenAI({
    // Keyless local servers still get a harmless bearer: the SDK insists on one.
    apiKey: config.apiKeySecret ? `{{secret:${config.apiKeySecret}}}` : 'carapace-no-key',
    baseURL: config.baseUrl ?? 'https://api.openai.com/v1',
    fetch: fetchImpl as never,
    maxRetries: 0,
    timeout: timeoutMs,
    organization: null,
    project: null,
  });
  const models = mergeCatalog(CATALOG, config.models);

  return {
    models: () => models,
    async complete(request, onEvent, opts: CompleteOptions = {}) {
      const info = lookup(models, request.model);
      const idle = idleGuard(timeoutMs, opts.signal);
      try {
        const stream = await client.chat.completions.create(toWire(request, info), { signal: idle.signal, timeout: timeoutMs });
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

/** Reasoning-era OpenAI models refuse `max_tokens`; older and local servers only know it. */
const COMPLETION_TOKENS = /^(o\d|gpt-5)/;

function toWire(req: CompletionRequest, info: ModelInfo): any {
  const maxTokens = Math.min(req.maxTokens ?? info.maxTokens, info.maxTokens);
  return {
    model: req.model,
    stream: true,
    stream_options: { include_usage: true },
    ...(COMPLETION_TOKENS.test(req.model) ? { max_completion_tokens: maxTokens } : { max_tokens: maxTokens }),
    ...(req.temperature !== undefined ? { temperature: req.temperature } : {}),
    ...(req.tools?.length
      ? { tools: req.tools.map((t) => ({ type: 'function', function: { name: t.name, description: t.description, parameters: t.input } })) }
      : {}),
    messages: [...(req.system ? [{ role: 'system', content: req.system }] : []), ...req.messages.flatMap(messageToWire)],
  };
}

function messageToWire(m: ChatMessage): unknown[] {
  const text = m.content
    .filter((p): p is Extract<ContentPart, { type: 'text' }> => p.type === 'text')
    .map((p) => p.text)
    .join('');
  if (m.role === 'assistant') {
    const calls = m.content.filter((p): p is Extract<ContentPart, { type: 'tool_call' }> => p.type === 'tool_call');
    return [
      {
        role: 'assistant',
        content: text || null,
        ...(calls.length
          ? { tool_calls: calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: typeof c.input === 'string' ? c.input : JSON.stringify(c.input ?? {}) } })) }
          : {}),
      },
    ];
  }
  // Tool results must directly follow the assistant turn that asked for them.
  const results = m.content
    .filter((p): p is Extract<ContentPart, { type: 'tool_result' }> => p.type === 'tool_result')
    .map((r) => ({ role: 'tool', tool_call_id: r.toolCallId, content: r.isError ? `ERROR: ${r.content}` : r.content || '(empty)' }));
  return [...results, ...(text ? [{ role: 'user', content: text }] : results.length ? [] : [{ role: 'user', content: '(empty)' }])];
}

// ---------------------------------------------------------------- response

async function collect(stream: AsyncIterable<any>, onEvent: (e: CompletionEvent) => void, touch: () => void): Promise<CompletionResult> {
  let text = '';
  const calls: { id: string; name: string; args: string }[] = [];
  const usage: Usage = { inputTokens: 0, outputTokens: 0 };
  let finish: string | null = null;
  for await (const chunk of stream) {
    touch();
    if (chunk.usage) {
      const cached = chunk.usage.prompt_tokens_details?.cached_tokens ?? 0;
      usage.inputTokens = (chunk.usage.prompt_tokens ?? 0) - cached;
      usage.outputTokens = chunk.usage.completion_tokens ?? 0;
      if (cached) usage.cacheReadTokens = cached;
    }
    const choice = chunk.choices?.[0];
    if (!choice) continue;
    const delta = choice.delta ?? {};
    if (typeof delta.content === 'string' && delta.content) {
      text += delta.content;
      onEvent({ type: 'text', delta: delta.content });
    }
    for (const tc of delta.tool_calls ?? []) {
      const index = typeof tc.index === 'number' ? tc.index : calls.length;
      let call = calls[index];
      if (!call) {
        call = calls[index] = { id: tc.id || `call_${index}_${Date.now().toString(36)}`, name: tc.function?.name ?? '', args: '' };
        onEvent({ type: 'tool_call_start', id: call.id, name: call.name });
      } else if (tc.function?.name && !call.name) call.name = tc.function.name;
      if (tc.function?.arguments) {
        call.args += tc.function.arguments;
        onEvent({ type: 'tool_call_delta', id: call.id, partialJson: tc.function.arguments });
      }
    }
    if (choice.finish_reason) finish = choice.finish_reason;
  }
  const content: ContentPart[] = [];
  if (text) content.push({ type: 'text', text });
  for (const c of calls.filter(Boolean)) content.push({ type: 'tool_call', id: c.id, name: c.name, input: parseArguments(c.args) });
  return { message: { role: 'assistant', content }, stopReason: mapStop(finish, content), usage };
}

function parseArguments(raw: string): unknown {
  if (raw.trim() === '') return {};
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

function mapStop(finish: string | null, content: ContentPart[]): CompletionResult['stopReason'] {
  if (content.some((p) => p.type === 'tool_call')) return 'tool_use';
  if (finish === 'length') return 'max_tokens';
  if (finish === 'content_filter') return 'refusal';
  return 'end';
}

// ---------------------------------------------------------------- errors & timeouts

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
  if (idleTimedOut || err instanceof OpenAI.APIConnectionTimeoutError) return { kind: 'timeout', message: 'the provider did not answer in time' };
  if (err instanceof OpenAI.APIUserAbortError) return { kind: 'aborted', message: 'the request was aborted' };
  if (err instanceof OpenAI.APIError && typeof err.status === 'number') {
    const status = err.status;
    const detail = (err.error as { message?: string } | undefined)?.message ?? err.message;
    const retryAfterMs = retryAfter(err.headers);
    const ra = retryAfterMs !== undefined ? { retryAfterMs } : {};
    if (status === 429) return { kind: 'rate_limit', status, message: `rate limited: ${detail}`, ...ra };
    if (status === 529 || status === 503) return { kind: 'overloaded', status, message: `overloaded: ${detail}`, ...ra };
    if (status === 401 || status === 403) return { kind: 'auth', status, message: `authentication failed: ${detail}` };
    if (status === 408) return { kind: 'timeout', status, message: `request timeout: ${detail}` };
    if (status >= 500) return { kind: 'server', status, message: `server error ${status}: ${detail}` };
    return { kind: 'bad_request', status, message: `request refused (${status}): ${detail}` };
  }
  if (err instanceof OpenAI.APIConnectionError) return { kind: 'network', message: `cannot reach the provider: ${err.message}` };
  const e = err as { name?: string; message?: string };
  if (e?.name === 'AbortError') return { kind: 'aborted', message: 'the request was aborted' };
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

function lookup(models: ModelInfo[], id: string): ModelInfo {
  const exact = models.find((m) => m.id === id);
  if (exact) return exact;
  const prefix = models.filter((m) => id.startsWith(m.id)).sort((a, b) => b.id.length - a.id.length)[0];
  return prefix ? { ...prefix, id } : { ...UNKNOWN, id };
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
