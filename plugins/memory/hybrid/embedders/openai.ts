// An OpenAI-compatible `/embeddings` client: OpenAI itself, Ollama (`/v1`), LM Studio,
// vLLM, any proxy speaking that wire. HTTP goes through an injected `post` so the
// plugin can route it via the kernel's net capability (allowlist, secret placeholders).
import { EmbedderError, l2normalize, type Embedder } from './types.ts';

export interface HttpResponse {
  status: number;
  body: string;
}
export type HttpPost = (url: string, init: { headers: Record<string, string>; body: string; timeoutMs: number }) => Promise<HttpResponse>;

export interface OpenAiEmbedderOptions {
  /** e.g. https://api.openai.com/v1 or http://127.0.0.1:11434/v1 */
  baseUrl: string;
  model: string;
  /** A key, a `{{secret:NAME}}` placeholder the kernel substitutes, or undefined (Ollama). */
  apiKey?: string;
  /** Ask the model for this many dimensions (OpenAI text-embedding-3-* support it). */
  dims?: number;
  batchSize?: number;
  /** Keep one request under this many characters of input. */
  maxBatchChars?: number;
  timeoutMs?: number;
  post?: HttpPost;
}

export const fetchPost: HttpPost = async (url, init) => {
  const res = await fetch(url, { method: 'POST', headers: init.headers, body: init.body, signal: AbortSignal.timeout(init.timeoutMs) });
  return { status: res.status, body: await res.text() };
};

function batches(texts: string[], size: number, maxChars: number): number[][] {
  const out: number[][] = [];
  let cur: number[] = [];
  let chars = 0;
  texts.forEach((t, i) => {
    if (cur.length && (cur.length >= size || chars + t.length > maxChars)) {
      out.push(cur);
      cur = [];
      chars = 0;
    }
    cur.push(i);
    chars += t.length;
  });
  if (cur.length) out.push(cur);
  return out;
}

export function createOpenAiEmbedder(opts: OpenAiEmbedderOptions): Embedder {
  const base = opts.baseUrl.replace(/\/+$/, '');
  const post = opts.post ?? fetchPost;
  const batchSize = opts.batchSize ?? 64;
  const maxChars = opts.maxBatchChars ?? 200_000;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  let dims = opts.dims;
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (opts.apiKey) headers.authorization = `Bearer ${opts.apiKey}`;

  async function one(inputs: string[]): Promise<Float32Array[]> {
    const body: Record<string, unknown> = { model: opts.model, input: inputs, encoding_format: 'float' };
    if (opts.dims) body.dimensions = opts.dims;
    let res: HttpResponse;
    try {
      res = await post(`${base}/embeddings`, { headers, body: JSON.stringify(body), timeoutMs });
    } catch (err) {
      throw new EmbedderError(`embedding request to ${base} failed: ${(err as Error).message}`);
    }
    if (res.status < 200 || res.status >= 300) {
      // The body may echo request details; keep only a short, single-line excerpt.
      const excerpt = res.body.replace(/\s+/g, ' ').slice(0, 160);
      throw new EmbedderError(`embedding provider ${base} answered HTTP ${res.status}${excerpt ? `: ${excerpt}` : ''}`, res.status);
    }
    let parsed: { data?: { embedding?: unknown; index?: number }[] };
    try {
      parsed = JSON.parse(res.body);
    } catch {
      throw new EmbedderError(`embedding provider ${base} answered with invalid JSON`);
    }
    const data = parsed.data;
    if (!Array.isArray(data) || data.length !== inputs.length) {
      throw new EmbedderError(`embedding provider ${base} returned ${Array.isArray(data) ? data.length : 'no'} vectors for ${inputs.length} inputs`);
    }
    const out = new Array<Float32Array>(inputs.length);
    data.forEach((d, pos) => {
      const e = d.embedding;
      if (!Array.isArray(e) || e.length === 0 || !e.every((x) => typeof x === 'number' && Number.isFinite(x))) {
        throw new EmbedderError(`embedding provider ${base} returned a malformed vector`);
      }
      if (dims === undefined) dims = e.length;
      if (e.length !== dims) throw new EmbedderError(`embedding provider ${base} returned ${e.length} dimensions, expected ${dims}`);
      const idx = typeof d.index === 'number' ? d.index : pos;
      if (idx < 0 || idx >= inputs.length) throw new EmbedderError(`embedding provider ${base} returned an out-of-range index`);
      out[idx] = l2normalize(Float32Array.from(e as number[]));
    });
    if (out.some((v) => v === undefined)) throw new EmbedderError(`embedding provider ${base} skipped some inputs`);
    return out;
  }

  return {
    id: `openai:${base}:${opts.model}${opts.dims ? `:${opts.dims}` : ''}`,
    get dims() {
      return dims;
    },
    lexical: false,
    async embed(texts) {
      const result = new Array<Float32Array>(texts.length);
      for (const group of batches(texts, batchSize, maxChars)) {
        const vecs = await one(group.map((i) => texts[i]));
        group.forEach((i, k) => (result[i] = vecs[k]));
      }
      return result;
    },
  };
}
