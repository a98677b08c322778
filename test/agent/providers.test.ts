import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startFakeAnthropic } from '../helpers/fake-anthropic.ts';
import { startFakeOpenAI } from '../helpers/fake-openai.ts';
import { testHost, installCarapace } from '../helpers/carapace-host.ts';
import * as anthropic from '../../plugins/providers/anthropic/index.ts';
import * as openai from '../../plugins/providers/openai/index.ts';
import { CATALOG as ANTHROPIC_CATALOG } from '../../plugins/providers/anthropic/catalog.ts';
import { CATALOG as OPENAI_CATALOG } from '../../plugins/providers/openai/catalog.ts';
import type { CompletionEvent, ChatMessage, ProviderErrorInfo } from '../../core/plugin-api.ts';

const tools = [{ name: 'get_weather', description: 'Weather for a city', input: { type: 'object', properties: { city: { type: 'string' } } } }];
const user = (text: string): ChatMessage => ({ role: 'user', content: [{ type: 'text', text }] });

async function failure(p: Promise<unknown>): Promise<ProviderErrorInfo> {
  try {
    await p;
  } catch (err) {
    assert.equal((err as Error).name, 'ProviderError');
    return (err as anthropic.ProviderError).info;
  }
  assert.fail('expected the completion to fail');
}

test('anthropic: streamed text and a tool call come back through the real SDK, key substituted by the host', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const host = testHost({ baseUrl: fake.url, apiKeySecret: 'ANTHROPIC_API_KEY' }, { ANTHROPIC_API_KEY: 'sk-ant-test-123' });
  const p = anthropic.createProvider(host);
  fake.push({ text: ['Let me ', 'check.'], toolCalls: [{ id: 'toolu_1', name: 'get_weather', input: { city: 'Oslo' } }], usage: { input: 42, output: 17 } });
  const events: CompletionEvent[] = [];
  const res = await p.complete({ model: 'claude-sonnet-4-6', system: 'be brief', messages: [user('weather?')], tools }, (e) => events.push(e));
  assert.deepEqual(res.message.content, [
    { type: 'text', text: 'Let me check.' },
    { type: 'tool_call', id: 'toolu_1', name: 'get_weather', input: { city: 'Oslo' } },
  ]);
  assert.equal(res.stopReason, 'tool_use');
  assert.deepEqual(res.usage, { inputTokens: 42, outputTokens: 17 });
  assert.deepEqual(events.filter((e) => e.type === 'text').map((e) => (e as { delta: string }).delta), ['Let me ', 'check.']);
  assert.ok(events.some((e) => e.type === 'tool_call_start' && e.name === 'get_weather'));
  const sent = fake.requests[0];
  assert.equal(sent.headers['x-api-key'], 'sk-ant-test-123');
  assert.equal(sent.headers.authorization, undefined, 'the key is sent once, as x-api-key');
  assert.equal(sent.body.system, 'be brief');
  assert.equal(sent.body.stream, true);
  assert.equal(sent.body.tools[0].input_schema.type, 'object');
  assert.equal(sent.body.max_tokens, 64_000);
});

test('anthropic: tool results and prior tool calls are sent in Messages API shape', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const p = anthropic.createProvider(testHost({ baseUrl: fake.url, apiKeySecret: 'K' }, { K: 'v' }));
  fake.push({ text: 'It is sunny.' });
  const res = await p.complete(
    {
      model: 'claude-haiku-4-5',
      messages: [
        user('weather?'),
        { role: 'assistant', content: [{ type: 'tool_call', id: 't1', name: 'get_weather', input: { city: 'Oslo' } }] },
        { role: 'user', content: [{ type: 'tool_result', toolCallId: 't1', content: 'sunny', isError: false }] },
      ],
    },
    () => {},
  );
  assert.equal(res.stopReason, 'end');
  const msgs = fake.requests[0].body.messages;
  assert.deepEqual(msgs[1].content[0], { type: 'tool_use', id: 't1', name: 'get_weather', input: { city: 'Oslo' } });
  assert.deepEqual(msgs[2].content[0], { type: 'tool_result', tool_use_id: 't1', content: 'sunny' });
});

test('anthropic: authHeader bearer sends the key as Authorization: Bearer (compatible endpoints)', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const p = anthropic.createProvider(testHost({ baseUrl: fake.url, apiKeySecret: 'MINIMAX_KEY', authHeader: 'bearer' }, { MINIMAX_KEY: 'mm-secret' }));
  fake.push({ text: 'hi' });
  await p.complete({ model: 'MiniMax-M2', messages: [user('hi')] }, () => {});
  assert.equal(fake.requests[0].headers.authorization, 'Bearer mm-secret');
  assert.equal(fake.requests[0].headers['x-api-key'], undefined);
});

test('anthropic: 429, 529, 500 and 401 map to rate_limit (with retry-after), overloaded, server and auth', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const p = anthropic.createProvider(testHost({ baseUrl: fake.url, apiKeySecret: 'K' }, { K: 'v' }));
  const req = { model: 'claude-sonnet-4-6', messages: [user('x')] };
  fake.push({ error: { status: 429, retryAfterSeconds: 2 } }, { error: { status: 529 } }, { error: { status: 500 } }, { error: { status: 401 } }, { error: { status: 400 } });
  const rl = await failure(p.complete(req, () => {}));
  assert.equal(rl.kind, 'rate_limit');
  assert.equal(rl.retryAfterMs, 2000);
  assert.equal((await failure(p.complete(req, () => {}))).kind, 'overloaded');
  assert.equal((await failure(p.complete(req, () => {}))).kind, 'server');
  assert.equal((await failure(p.complete(req, () => {}))).kind, 'auth');
  assert.equal((await failure(p.complete(req, () => {}))).kind, 'bad_request');
  assert.equal(fake.requests.length, 5, 'the SDK must not retry on its own');
});

test('anthropic: a server that never answers, or stalls mid-stream, is a timeout', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const p = anthropic.createProvider(testHost({ baseUrl: fake.url, apiKeySecret: 'K', timeoutMs: 300 }, { K: 'v' }));
  fake.push({ hang: true }, { text: 'x', stallAfterStart: true });
  assert.equal((await failure(p.complete({ model: 'claude-sonnet-4-6', messages: [user('x')] }, () => {}))).kind, 'timeout');
  assert.equal((await failure(p.complete({ model: 'claude-sonnet-4-6', messages: [user('x')] }, () => {}))).kind, 'timeout');
});

test('anthropic: an aborted request reports aborted, not a failure to fall back on', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const p = anthropic.createProvider(testHost({ baseUrl: fake.url, apiKeySecret: 'K' }, { K: 'v' }));
  fake.push({ hang: true });
  const ctl = new AbortController();
  const pending = p.complete({ model: 'claude-sonnet-4-6', messages: [user('x')] }, () => {}, { signal: ctl.signal });
  setTimeout(() => ctl.abort(), 50);
  assert.equal((await failure(pending)).kind, 'aborted');
});

test('anthropic: tool arguments that are not valid JSON come back as the raw string', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const p = anthropic.createProvider(testHost({ baseUrl: fake.url, apiKeySecret: 'K' }, { K: 'v' }));
  fake.push({ toolCalls: [{ id: 'bad', name: 'get_weather', rawJson: '{"city": "Os' }] });
  const res = await p.complete({ model: 'claude-sonnet-4-6', messages: [user('x')], tools }, () => {});
  assert.deepEqual(res.message.content[0], { type: 'tool_call', id: 'bad', name: 'get_weather', input: '{"city": "Os' });
});

test('anthropic: the worker entry points read globalThis.carapace', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const restore = installCarapace(testHost({ baseUrl: fake.url, apiKeySecret: 'K', models: [{ id: 'claude-sonnet-4-6', contextWindow: 1000 }] }, { K: 'v' }));
  t.after(restore);
  fake.push({ text: 'ok' });
  const res = await anthropic.complete({ model: 'claude-sonnet-4-6', messages: [user('x')] }, () => {});
  assert.equal(res.message.content[0].type, 'text');
  const m = anthropic.models().find((x) => x.id === 'claude-sonnet-4-6')!;
  assert.equal(m.contextWindow, 1000, 'config overrides the catalog');
  assert.equal(m.price?.input, 3, 'and keeps what it does not override');
});

test('openai: streamed text and tool calls through the real SDK, with usage and bearer key', async (t) => {
  const fake = await startFakeOpenAI();
  t.after(() => fake.close());
  const p = openai.createProvider(testHost({ baseUrl: fake.url + '/v1', apiKeySecret: 'OPENAI_API_KEY' }, { OPENAI_API_KEY: 'sk-test-9' }));
  fake.push({ text: ['Checking', '...'], toolCalls: [{ id: 'call_1', name: 'get_weather', input: { city: 'Rome' } }, { id: 'call_2', name: 'get_weather', input: { city: 'Oslo' } }], usage: { input: 30, output: 12, cacheRead: 10 } });
  const events: CompletionEvent[] = [];
  const res = await p.complete({ model: 'gpt-4.1-mini', system: 'sys', messages: [user('weather?')], tools }, (e) => events.push(e));
  assert.deepEqual(res.message.content, [
    { type: 'text', text: 'Checking...' },
    { type: 'tool_call', id: 'call_1', name: 'get_weather', input: { city: 'Rome' } },
    { type: 'tool_call', id: 'call_2', name: 'get_weather', input: { city: 'Oslo' } },
  ]);
  assert.equal(res.stopReason, 'tool_use');
  assert.deepEqual(res.usage, { inputTokens: 20, outputTokens: 12, cacheReadTokens: 10 });
  assert.equal(events.filter((e) => e.type === 'tool_call_start').length, 2);
  const sent = fake.requests[0];
  assert.equal(sent.headers.authorization, 'Bearer sk-test-9');
  assert.deepEqual(sent.body.messages[0], { role: 'system', content: 'sys' });
  assert.equal(sent.body.tools[0].function.name, 'get_weather');
  assert.deepEqual(sent.body.stream_options, { include_usage: true });
});

test('openai: tool results become role "tool" messages after the assistant tool_calls', async (t) => {
  const fake = await startFakeOpenAI();
  t.after(() => fake.close());
  const p = openai.createProvider(testHost({ baseUrl: fake.url + '/v1', apiKeySecret: null }));
  fake.push({ text: 'Sunny.' });
  await p.complete(
    {
      model: 'llama3.2',
      messages: [
        user('weather?'),
        { role: 'assistant', content: [{ type: 'tool_call', id: 'c1', name: 'get_weather', input: { city: 'Rome' } }] },
        { role: 'user', content: [{ type: 'tool_result', toolCallId: 'c1', content: 'sunny' }] },
      ],
    },
    () => {},
  );
  const msgs = fake.requests[0].body.messages;
  assert.deepEqual(msgs[1], { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } }] });
  assert.deepEqual(msgs[2], { role: 'tool', tool_call_id: 'c1', content: 'sunny' });
  assert.equal(fake.requests[0].body.max_tokens, 8192, 'unknown local models get default limits');
});

test('openai: 429 with retry-after, 500 and a hang map to rate_limit, server and timeout', async (t) => {
  const fake = await startFakeOpenAI();
  t.after(() => fake.close());
  const p = openai.createProvider(testHost({ baseUrl: fake.url + '/v1', apiKeySecret: 'K', timeoutMs: 300 }, { K: 'v' }));
  const req = { model: 'gpt-4.1-mini', messages: [user('x')] };
  fake.push({ error: { status: 429, retryAfterMs: 1500 } }, { error: { status: 500 } }, { hang: true });
  const rl = await failure(p.complete(req, () => {}));
  assert.equal(rl.kind, 'rate_limit');
  assert.equal(rl.retryAfterMs, 1500);
  assert.equal((await failure(p.complete(req, () => {}))).kind, 'server');
  assert.equal((await failure(p.complete(req, () => {}))).kind, 'timeout');
  assert.equal(fake.requests.length, 3, 'the SDK must not retry on its own');
});

test('the signed provider manifests provide the same models as the code catalogs', () => {
  for (const [id, catalog] of [['anthropic', ANTHROPIC_CATALOG], ['openai', OPENAI_CATALOG]] as const) {
    const manifest = JSON.parse(readFileSync(new URL(`../../manifests/provider.${id}.json`, import.meta.url), 'utf8'));
    assert.deepEqual(manifest.provides.models, catalog, id);
    assert.equal(manifest.runtime, 'worker');
  }
});
