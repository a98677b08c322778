import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startFakeAnthropic } from '../helpers/fake-anthropic.ts';
import { startFakeOpenAI } from '../helpers/fake-openai.ts';
import { agentKit, writeWorkspace, type ToolImpl } from '../helpers/agent-kit.ts';
import { tempHome } from '../helpers/home.ts';

const weather: ToolImpl = {
  name: 'get_weather',
  description: 'Weather for a city',
  input: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  run: (input: { city: string }) => `${input.city}: 21°C, sunny`,
};
const clock: ToolImpl = { name: 'time.now', description: 'Current time', input: { type: 'object', properties: {} }, run: () => '12:00 UTC' };

function config(anthropicUrl: string, openaiUrl = 'http://127.0.0.1:9', extra: Record<string, unknown> = {}) {
  return {
    providers: {
      anthropic: { apiKey: { secret: 'ANTHROPIC_API_KEY' }, baseUrl: anthropicUrl, timeoutMs: 400 },
      openai: { apiKey: { secret: 'OPENAI_API_KEY' }, baseUrl: openaiUrl + '/v1', timeoutMs: 400 },
    },
    agents: {
      defaults: { model: { primary: 'anthropic/claude-sonnet-4-6', fallbacks: ['openai/gpt-4.1-mini'] }, tools: { allow: ['*'], deny: [], requireApproval: [] }, ...extra },
      list: [{ id: 'main' }],
    },
  };
}

test('a run streams text, makes two tool calls over two steps and answers with their results', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const kit = agentKit({ config: config(fake.url), tools: [weather, clock] });
  t.after(kit.close);
  writeWorkspace(kit.home.paths.workspace, { 'SOUL.md': 'You are cheerful.', 'USER.md': 'The user lives in Oslo.' });
  fake.push(
    { text: ['Let me ', 'look.'], toolCalls: [{ name: 'get_weather', input: { city: 'Oslo' } }] },
    { toolCalls: [{ name: 'time_now', input: {} }] },
    { text: ['It is 21°C ', 'in Oslo at noon.'], usage: { input: 100, output: 20 } },
  );
  const { done, sessionKey } = kit.agent.send({ text: 'Weather and time?' });
  const run = await done;
  assert.equal(run.status, 'done');
  assert.equal(run.text, 'It is 21°C in Oslo at noon.');
  assert.equal(run.steps, 3);
  assert.equal(sessionKey, 'agent:main:main');

  const first = fake.requests[0].body;
  assert.match(first.system, /You are cheerful\./);
  assert.match(first.system, /The user lives in Oslo\./);
  assert.deepEqual(first.tools.map((x: { name: string }) => x.name).sort(), ['get_weather', 'time_now'], 'dotted tool names are made wire-safe');
  const third = fake.requests[2].body.messages;
  const results = third.flatMap((m: { content: { type: string; content?: string }[] }) => m.content.filter((c) => c.type === 'tool_result').map((c) => c.content));
  assert.deepEqual(results, ['Oslo: 21°C, sunny', '12:00 UTC']);

  const deltas = kit.events.filter((e) => e.stream === 'assistant').map((e) => e.data.delta);
  assert.deepEqual(deltas, ['Let me ', 'look.', 'It is 21°C ', 'in Oslo at noon.']);
  const toolEvents = kit.events.filter((e) => e.stream === 'tool' && e.data.phase === 'end').map((e) => e.data.name);
  assert.deepEqual(toolEvents, ['get_weather', 'time.now']);
  const seqs = kit.events.map((e) => e.seq);
  assert.deepEqual(seqs, seqs.map((_, i) => i), 'events carry a gapless per-run seq');
  const end = kit.events.at(-1)!;
  assert.equal(end.data.phase, 'end');
  assert.equal(kit.agent.store.getRun(run.runId)!.steps, 3);
  assert.ok(kit.agent.store.getRun(run.runId)!.costUsd > 0, 'cost is recorded per run');
});

test('the transcript survives closing and reopening the store', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const home = tempHome('agent-reopen');
  t.after(home.cleanup);
  const first = agentKit({ config: config(fake.url), home });
  fake.push({ text: 'Nice to meet you, Ada.' });
  await first.agent.send({ text: 'My name is Ada.' }).done;
  first.close();

  const second = agentKit({ config: config(fake.url), home });
  t.after(second.close);
  fake.push({ text: 'Your name is Ada.' });
  const run = await second.agent.send({ text: 'What is my name?' }).done;
  assert.equal(run.status, 'done');
  const sent = fake.requests[1].body.messages;
  assert.deepEqual(
    sent.map((m: { role: string; content: { text?: string }[] }) => [m.role, m.content[0].text]),
    [
      ['user', 'My name is Ada.'],
      ['assistant', 'Nice to meet you, Ada.'],
      ['user', 'What is my name?'],
    ],
  );
  assert.equal(second.agent.history('agent:main:main').length, 4);
});

test('a 529 from the primary falls back to the next model, which answers', async (t) => {
  const a = await startFakeAnthropic();
  const o = await startFakeOpenAI();
  t.after(() => a.close());
  t.after(() => o.close());
  const kit = agentKit({ config: config(a.url, o.url) });
  t.after(kit.close);
  a.push({ error: { status: 529 } });
  o.push({ text: 'From the fallback.' });
  const run = await kit.agent.send({ text: 'hi' }).done;
  assert.equal(run.status, 'done');
  assert.equal(run.text, 'From the fallback.');
  assert.equal(run.model, 'openai/gpt-4.1-mini');
  const fb = kit.events.find((e) => e.data.phase === 'fallback')!;
  assert.deepEqual(fb.data.error, { kind: 'overloaded', message: fb.data.error && (fb.data.error as { message: string }).message });
  assert.equal(fb.data.next, 'openai/gpt-4.1-mini');
});

for (const [label, scripted] of [
  ['a 429 rate limit', { error: { status: 429, retryAfterSeconds: 1 } }],
  ['a 500 server error', { error: { status: 500 } }],
  ['a timeout', { hang: true }],
] as const) {
  test(`${label} from the primary falls back to the next model`, async (t) => {
    const a = await startFakeAnthropic();
    const o = await startFakeOpenAI();
    t.after(() => a.close());
    t.after(() => o.close());
    const kit = agentKit({ config: config(a.url, o.url) });
    t.after(kit.close);
    a.push(scripted);
    o.push({ text: 'fallback answer' });
    const run = await kit.agent.send({ text: 'hi' }).done;
    assert.equal(run.text, 'fallback answer');
    assert.equal(o.requests.length, 1);
  });
}

test('when every model fails in every round the run ends with one clear error naming each', async (t) => {
  const a = await startFakeAnthropic();
  const o = await startFakeOpenAI();
  t.after(() => a.close());
  t.after(() => o.close());
  const kit = agentKit({ config: config(a.url, o.url) });
  t.after(kit.close);
  a.push({ error: { status: 529 } }, { error: { status: 429, retryAfterSeconds: 3 } });
  o.push({ error: { status: 500 } }, { error: { status: 503 } });
  const run = await kit.agent.send({ text: 'hi' }).done;
  assert.equal(run.status, 'error');
  assert.equal(run.reason, 'all_models_failed');
  assert.match(run.text, /^No model could answer: anthropic\/claude-sonnet-4-6: rate limited.*; openai\/gpt-4\.1-mini: overloaded/);
  assert.equal(a.requests.length + o.requests.length, 4, 'two rounds over two models');
  assert.equal(kit.sleeps.length, 1, 'one backoff between rounds');
  assert.ok(kit.sleeps[0] >= 500 && kit.sleeps[0] <= 30_000);
  const ends = kit.events.filter((e) => e.data.phase === 'end');
  assert.equal(ends.length, 1);
  assert.equal(kit.agent.store.getRun(run.runId)!.status, 'error');
});

test('an auth failure is not retried on the same model but the chain moves on', async (t) => {
  const a = await startFakeAnthropic();
  const o = await startFakeOpenAI();
  t.after(() => a.close());
  t.after(() => o.close());
  const kit = agentKit({ config: config(a.url, o.url) });
  t.after(kit.close);
  a.push({ error: { status: 401 } });
  o.push({ error: { status: 500 } }, { text: 'second round' });
  const run = await kit.agent.send({ text: 'hi' }).done;
  assert.equal(run.text, 'second round');
  assert.equal(a.requests.length, 1);
});
