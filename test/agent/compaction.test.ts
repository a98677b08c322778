import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startFakeAnthropic } from '../helpers/fake-anthropic.ts';
import { agentKit, type ToolImpl } from '../helpers/agent-kit.ts';
import { agentConfig } from '../helpers/agent-config.ts';
import { chooseSplit } from '../../core/agent/compaction.ts';
import type { StoredMessage } from '../../core/agent/store.ts';

const SMALL_WINDOW = [{ id: 'claude-sonnet-4-6', contextWindow: 3000, maxTokens: 500 }];

function smallWindowConfig(url: string) {
  const c = agentConfig(url, undefined, { model: 'anthropic/claude-sonnet-4-6' });
  (c.providers.anthropic as Record<string, unknown>).models = SMALL_WINDOW;
  return c;
}

const isSummaryRequest = (body: { system?: string }) => /^You compress conversations/.test(body.system ?? '');

test('compaction keeps a long session under the context window and the summary is in the next request', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const kit = agentKit({ config: smallWindowConfig(fake.url) });
  t.after(kit.close);
  let summaries = 0;
  fake.setDefault((req) => (isSummaryRequest(req.body) ? { text: `SUMMARY-${++summaries}: the user is planning a trip to Kyoto.` } : { text: 'Noted. ' + 'x'.repeat(1000) }));
  for (let i = 0; i < 12; i++) {
    const run = await kit.agent.send({ text: `Turn ${i}: ` + 'detail '.repeat(250) }).done;
    assert.equal(run.status, 'done', run.text);
  }
  assert.ok(summaries >= 1, 'the session was compacted');
  const chat = fake.requests.filter((r) => !isSummaryRequest(r.body));
  for (const r of chat) {
    const chars = JSON.stringify(r.body.messages).length + (r.body.system ?? '').length;
    assert.ok(chars / 3.5 < 3000, `a request of ~${Math.round(chars / 3.5)} tokens exceeded the 3000-token window`);
  }
  const afterFirst = fake.requests.findIndex((r) => isSummaryRequest(r.body)) + 1;
  assert.match(JSON.stringify(fake.requests[afterFirst].body.messages[0]), /SUMMARY-1: the user is planning a trip to Kyoto/);
  assert.match(JSON.stringify(chat.at(-1)!.body.messages), /Turn 11/, 'the latest turn is always kept');
  assert.ok(kit.events.some((e) => e.data.phase === 'compaction'));
  assert.equal(kit.agent.history('agent:main:main', { limit: 1000 }).length, 24, 'history keeps every message');
});

const msg = (id: number, role: 'user' | 'assistant', content: StoredMessage['message']['content']): StoredMessage => ({ id, runId: null, createdAt: 0, message: { role, content } });

test('a compaction split never separates a tool call from its result', () => {
  const big = 'y'.repeat(700);
  const transcript = [
    msg(1, 'user', [{ type: 'text', text: big }]),
    msg(2, 'assistant', [{ type: 'tool_call', id: 'a', name: 't', input: {} }]),
    msg(3, 'user', [{ type: 'tool_result', toolCallId: 'a', content: big }]),
    msg(4, 'assistant', [{ type: 'tool_call', id: 'b', name: 't', input: {} }]),
    msg(5, 'user', [{ type: 'tool_result', toolCallId: 'b', content: big }]),
    msg(6, 'assistant', [{ type: 'text', text: 'done' }]),
  ];
  for (const keep of [0, 50, 250, 450, 700, 5000]) {
    const split = chooseSplit(transcript, keep);
    if (split <= 0) continue;
    const first = transcript[split].message;
    assert.ok(!(first.role === 'user' && first.content.some((p) => p.type === 'tool_result')), `split at ${split} (keep ${keep}) orphans a tool result`);
  }
});

const echo: ToolImpl = { name: 'echo', description: 'Echo', input: { type: 'object' }, run: () => 'z'.repeat(1500) };

test('compaction in the middle of a tool loop keeps each tool call paired with its result', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const kit = agentKit({ config: smallWindowConfig(fake.url), tools: [echo] });
  t.after(kit.close);
  let calls = 0;
  fake.setDefault((req) => (isSummaryRequest(req.body) ? { text: 'SUMMARY: echo was called many times.' } : ++calls < 8 ? { toolCalls: [{ name: 'echo', input: { i: calls } }] } : { text: 'finished' }));
  const run = await kit.agent.send({ text: 'call echo until done' }).done;
  assert.equal(run.status, 'done', run.text);
  assert.ok(fake.requests.some((r) => isSummaryRequest(r.body)), 'the run compacted mid-loop');
  for (const r of fake.requests.filter((x) => !isSummaryRequest(x.body))) {
    const msgs = r.body.messages as { role: string; content: { type: string; id?: string; tool_use_id?: string }[] }[];
    assert.equal(msgs[0].role, 'user');
    const uses = new Set(msgs.flatMap((m) => m.content.filter((c) => c.type === 'tool_use').map((c) => c.id)));
    const results = msgs.flatMap((m) => m.content.filter((c) => c.type === 'tool_result').map((c) => c.tool_use_id));
    for (const id of results) assert.ok(uses.has(id), `tool_result ${id} sent without its tool_use`);
    assert.equal(results.length, uses.size);
  }
});

test('before old turns are compacted away, their durable facts are written to memory (memory_write, today\'s note)', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const written: unknown[] = [];
  const memoryWrite: ToolImpl = { name: 'memory_write', description: 'write memory', input: { type: 'object' }, run: async (input) => (written.push(input), 'written') };
  const kit = agentKit({ config: smallWindowConfig(fake.url), tools: [memoryWrite] });
  t.after(kit.close);
  fake.setDefault((req) =>
    isSummaryRequest(req.body)
      ? { text: 'The user plans a trip.\nDURABLE FACTS:\n- The user is vegetarian.\n- Their sister Mia lives in Osaka.' }
      : { text: 'Noted. ' + 'x'.repeat(1000) },
  );
  for (let i = 0; i < 6; i++) assert.equal((await kit.agent.send({ text: `Turn ${i}: ` + 'detail '.repeat(250) }).done).status, 'done');
  assert.ok(written.length >= 1, 'the facts were flushed');
  assert.deepEqual(written[0], { target: 'daily', text: '- The user is vegetarian.\n- Their sister Mia lives in Osaka.' });
  const afterSummary = fake.requests.findIndex((r) => isSummaryRequest(r.body)) + 1;
  const next = JSON.stringify(fake.requests[afterSummary].body.messages[0]);
  assert.match(next, /The user plans a trip\./);
  assert.doesNotMatch(next, /DURABLE FACTS/, 'the facts section is not part of the summary');
  assert.ok(kit.events.some((e) => e.data.phase === 'memory_flush'));
});

test('no flush when the summariser finds no durable facts', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const written: unknown[] = [];
  const kit = agentKit({ config: smallWindowConfig(fake.url), tools: [{ name: 'memory_write', description: 'w', input: { type: 'object' }, run: async (i) => (written.push(i), 'ok') }] });
  t.after(kit.close);
  fake.setDefault((req) => (isSummaryRequest(req.body) ? { text: 'Small talk.\nDURABLE FACTS: none' } : { text: 'Noted. ' + 'x'.repeat(1000) }));
  for (let i = 0; i < 6; i++) await kit.agent.send({ text: `Turn ${i}: ` + 'detail '.repeat(250) }).done;
  assert.ok(fake.requests.some((r) => isSummaryRequest(r.body)), 'compaction happened');
  assert.deepEqual(written, []);
});
