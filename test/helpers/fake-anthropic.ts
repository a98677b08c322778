// A loopback fake of the Anthropic Messages API (POST /v1/messages) speaking the
// real SSE wire format, so the real @anthropic-ai/sdk can be pointed at it.
import type { ServerResponse } from 'node:http';
import { startFakeLlm, textChunks, type FakeLlm, type RecordedRequest, type Scripted } from './fake-llm-server.ts';

export type { FakeLlm, Scripted, RecordedRequest } from './fake-llm-server.ts';

const ERROR_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  529: 'overloaded_error',
};

let counter = 0;

export function startFakeAnthropic(): Promise<FakeLlm> {
  return startFakeLlm((method, path) => method === 'POST' && path === '/v1/messages', write);
}

function write(req: RecordedRequest, s: Scripted, res: ServerResponse): void {
  if ('error' in s) {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'request-id': `req_fake_${++counter}` };
    if (s.error.retryAfterSeconds !== undefined) headers['retry-after'] = String(s.error.retryAfterSeconds);
    if (s.error.retryAfterMs !== undefined) headers['retry-after-ms'] = String(s.error.retryAfterMs);
    const type = s.error.type ?? ERROR_TYPES[s.error.status] ?? 'api_error';
    res.writeHead(s.error.status, headers).end(JSON.stringify({ type: 'error', error: { type, message: s.error.message ?? `fake ${type}` } }));
    return;
  }
  if ('hang' in s) return;
  const model = (req.body?.model as string) ?? 'claude-fake';
  const id = `msg_fake_${++counter}`;
  const usage = { input: s.usage?.input ?? 10, output: s.usage?.output ?? 5, cacheRead: s.usage?.cacheRead ?? 0 };
  const texts = textChunks(s.text);
  const calls = (s.toolCalls ?? []).map((c, i) => ({ ...c, id: c.id ?? `toolu_fake_${counter}_${i}` }));
  const stopReason = s.stopReason ?? (calls.length ? 'tool_use' : 'end_turn');

  if (req.body?.stream !== true) {
    const content = [
      ...(texts.length ? [{ type: 'text', text: texts.join('') }] : []),
      ...calls.map((c) => ({ type: 'tool_use', id: c.id, name: c.name, input: c.input ?? {} })),
    ];
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({ id, type: 'message', role: 'assistant', model, content, stop_reason: stopReason, stop_sequence: null, usage: { input_tokens: usage.input, output_tokens: usage.output, cache_read_input_tokens: usage.cacheRead } }),
    );
    return;
  }

  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'request-id': `req_fake_${counter}` });
  const out: string[] = [];
  const ev = (type: string, data: unknown) => out.push(`event: ${type}\ndata: ${JSON.stringify(data)}\n\n`);
  ev('message_start', {
    type: 'message_start',
    message: { id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: usage.input, output_tokens: 1, cache_read_input_tokens: usage.cacheRead, cache_creation_input_tokens: 0 } },
  });
  if (s.stallAfterStart) {
    res.write(out.join('')); // then nothing more: the client's idle timeout must fire
    return;
  }
  ev('ping', { type: 'ping' });
  let index = 0;
  if (texts.length) {
    ev('content_block_start', { type: 'content_block_start', index, content_block: { type: 'text', text: '' } });
    for (const t of texts) ev('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'text_delta', text: t } });
    ev('content_block_stop', { type: 'content_block_stop', index });
    index++;
  }
  for (const c of calls) {
    ev('content_block_start', { type: 'content_block_start', index, content_block: { type: 'tool_use', id: c.id, name: c.name, input: {} } });
    const json = c.rawJson ?? JSON.stringify(c.input ?? {});
    // Split the arguments over several deltas, as the real API does.
    const step = Math.max(1, Math.ceil(json.length / 3));
    for (let i = 0; i < json.length; i += step) {
      ev('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: json.slice(i, i + step) } });
    }
    ev('content_block_stop', { type: 'content_block_stop', index });
    index++;
  }
  ev('message_delta', { type: 'message_delta', delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: usage.output } });
  ev('message_stop', { type: 'message_stop' });
  res.end(out.join(''));
}
