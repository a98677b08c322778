import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startFakeAnthropic } from '../helpers/fake-anthropic.ts';
import { agentKit, type ToolImpl } from '../helpers/agent-kit.ts';
import { agentConfig } from '../helpers/agent-config.ts';

const echo: ToolImpl = { name: 'echo', description: 'Echo', input: { type: 'object' }, run: (i: unknown) => JSON.stringify(i) };

test('maxSteps stops a run with a message saying so, after the last tool results are recorded', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const kit = agentKit({ config: agentConfig(fake.url, undefined, { maxSteps: 3 }), tools: [echo] });
  t.after(kit.close);
  fake.setDefault(() => ({ toolCalls: [{ name: 'echo', input: { n: 1 } }] }));
  const run = await kit.agent.send({ text: 'loop' }).done;
  assert.equal(run.status, 'stopped');
  assert.equal(run.reason, 'max_steps');
  assert.match(run.text, /limit of 3 steps \(maxSteps\)/);
  assert.equal(fake.requests.length, 3);
  const history = kit.agent.history(run.sessionKey);
  assert.equal(history.at(-1)!.message.role, 'assistant');
  assert.match(JSON.stringify(history.at(-1)!.message.content), /maxSteps/);
  assert.ok(kit.events.some((e) => e.stream === 'assistant' && e.data.notice === true), 'clients see the stop message');
});

test('a model that calls tools forever is stopped by the default step limit', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const kit = agentKit({ config: agentConfig(fake.url), tools: [echo] });
  t.after(kit.close);
  let n = 0;
  fake.setDefault(() => ({ toolCalls: [{ name: 'echo', input: { n: ++n } }] }));
  const run = await kit.agent.send({ text: 'go' }).done;
  assert.equal(run.reason, 'max_steps');
  assert.equal(fake.requests.length, 24);
  // The next message still gets a valid transcript: every tool call has its result.
  fake.setDefault(null);
  fake.push({ text: 'ok, stopping' });
  const next = await kit.agent.send({ text: 'stop' }).done;
  assert.equal(next.status, 'done');
  const msgs = fake.requests.at(-1)!.body.messages as { role: string; content: { type: string; id?: string; tool_use_id?: string }[] }[];
  const uses = msgs.flatMap((m) => m.content.filter((c) => c.type === 'tool_use').map((c) => c.id));
  const results = msgs.flatMap((m) => m.content.filter((c) => c.type === 'tool_result').map((c) => c.tool_use_id));
  assert.deepEqual(results, uses);
});

test('the token budget per run stops the run with a message and leaves requested tools unrun', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const kit = agentKit({ config: agentConfig(fake.url, undefined, { budget: { tokensPerRun: 1000 } }), tools: [echo] });
  t.after(kit.close);
  fake.push({ toolCalls: [{ name: 'echo', input: {} }], usage: { input: 600, output: 100 } }, { toolCalls: [{ name: 'echo', input: {} }], usage: { input: 600, output: 100 } });
  const run = await kit.agent.send({ text: 'work' }).done;
  assert.equal(run.status, 'stopped');
  assert.equal(run.reason, 'token_budget');
  assert.match(run.text, /used 1400 tokens, over its budget of 1000 tokens per run/);
  const last = kit.agent.history(run.sessionKey).at(-2)!.message;
  assert.match(JSON.stringify(last.content), /Not run/);
});

test('the USD budget per day stops a run mid-way and refuses the next run the same day', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  // claude-sonnet-4-6: $3/M input, $15/M output → 1M input tokens cost $3.
  const kit = agentKit({ config: agentConfig(fake.url, undefined, { budget: { usdPerDay: 2, tokensPerRun: 10_000_000 } }), tools: [echo] });
  t.after(kit.close);
  fake.push({ toolCalls: [{ name: 'echo', input: {} }], usage: { input: 1_000_000, output: 0 } });
  const run = await kit.agent.send({ text: 'expensive' }).done;
  assert.equal(run.reason, 'usd_budget');
  assert.match(run.text, /spent \$3\.0000 today, reaching its budget of \$2 per day/);
  const again = await kit.agent.send({ text: 'more' }).done;
  assert.equal(again.reason, 'usd_budget');
  assert.equal(fake.requests.length, 1, 'no model call once the day is spent');
  kit.clock.advance(24 * 3600_000);
  fake.push({ text: 'new day' });
  assert.equal((await kit.agent.send({ text: 'tomorrow' }).done).text, 'new day');
});
