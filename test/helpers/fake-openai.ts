// A loopback fake of the OpenAI Chat Completions API (POST /v1/chat/completions)
// speaking the real SSE wire format (`data:` chunks, tool_calls deltas, usage, [DONE]).
import type { ServerResponse } from 'node:http';
import { startFakeLlm, textChunks, type FakeLlm, type RecordedRequest, type Scripted } from './fake-llm-server.ts';

export type { FakeLlm, Scripted, RecordedRequest } from './fake-llm-server.ts';

const ERROR_CODES: Record<number, { type: string; code: string | null }> = {
  400: { type: 'invalid_request_error', code: null },
  401: { type: 'invalid_request_error', code: 'invalid_api_key' },
  429: { type: 'requests', code: 'rate_limit_exceeded' },
  500: { type: 'server_error', code: null },
  503: { type: 'server_error', code: null },
};

let counter = 0;

export function startFakeOpenAI(): Promise<FakeLlm> {
  return startFakeLlm((method, path) => method === 'POST' && path === '/v1/chat/completions', write);
}

function write(req: RecordedRequest, s: Scripted, res: ServerResponse): void {
  if ('error' in s) {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'x-request-id': `req_fake_${++counter}` };
    if (s.error.retryAfterSeconds !== undefined) headers['retry-after'] = String(s.error.retryAfterSeconds);
    if (s.error.retryAfterMs !== undefined) headers['retry-after-ms'] = String(s.error.retryAfterMs);
    const known = ERROR_CODES[s.error.status] ?? { type: 'server_error', code: null };
    res.writeHead(s.error.status, headers).end(
      JSON.stringify({ error: { message: s.error.message ?? `fake ${known.type}`, type: s.error.type ?? known.type, param: null, code: known.code } }),
    );
    return;
  }
  if ('hang' in s) return;
  const model = (req.body?.model as string) ?? 'gpt-fake';
  const id = `chatcmpl-fake${++counter}`;
  const created = Math.floor(Date.now() / 1000);
  const texts = textChunks(s.text);
  const calls = (s.toolCalls ?? []).map((c, i) => ({ ...c, id: c.id ?? `call_fake_${counter}_${i}` }));
  const finish = s.stopReason ?? (calls.length ? 'tool_calls' : 'stop');
  const usage = { prompt_tokens: s.usage?.input ?? 10, completion_tokens: s.usage?.output ?? 5, total_tokens: (s.usage?.input ?? 10) + (s.usage?.output ?? 5), prompt_tokens_details: { cached_tokens: s.usage?.cacheRead ?? 0 } };

  if (req.body?.stream !== true) {
    const message = {
      role: 'assistant',
      content: texts.length ? texts.join('') : null,
      ...(calls.length ? { tool_calls: calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.rawJson ?? JSON.stringify(c.input ?? {}) } })) } : {}),
    };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id, object: 'chat.completion', created, model, choices: [{ index: 0, message, finish_reason: finish }], usage }));
    return;
  }

  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const out: string[] = [];
  const chunk = (delta: unknown, finishReason: string | null = null) =>
    out.push(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason: finishReason }] })}\n\n`);
  chunk({ role: 'assistant', content: '' });
  if (s.stallAfterStart) {
    res.write(out.join(''));
    return;
  }
  for (const t of texts) chunk({ content: t });
  calls.forEach((c, index) => {
    chunk({ tool_calls: [{ index, id: c.id, type: 'function', function: { name: c.name, arguments: '' } }] });
    const json = c.rawJson ?? JSON.stringify(c.input ?? {});
    const step = Math.max(1, Math.ceil(json.length / 3));
    for (let i = 0; i < json.length; i += step) chunk({ tool_calls: [{ index, function: { arguments: json.slice(i, i + step) } }] });
  });
  chunk({}, finish);
  if (req.body?.stream_options?.include_usage) {
    out.push(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [], usage })}\n\n`);
  }
  out.push('data: [DONE]\n\n');
  res.end(out.join(''));
}
