import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startFakeAnthropic } from '../helpers/fake-anthropic.ts';
import { startFakeOpenAI } from '../helpers/fake-openai.ts';
import { agentKit, type ToolImpl } from '../helpers/agent-kit.ts';
import { agentConfig } from '../helpers/agent-config.ts';

const echo: ToolImpl = { name: 'echo', description: 'Echo', input: { type: 'object' }, run: (i: unknown) => `echo ${JSON.stringify(i)}` };

function lastToolResults(body: { messages: { content: unknown }[] }): { content: string; is_error?: boolean }[] {
  const last = body.messages.at(-1)!.content as { type: string; content: string; is_error?: boolean }[];
  return last.filter((c) => c.type === 'tool_result');
}

test('invalid tool JSON is answered with a tool_result error and the run continues', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const kit = agentKit({ config: agentConfig(fake.url), tools: [echo] });
  t.after(kit.close);
  fake.push({ toolCalls: [{ name: 'echo', rawJson: '{"a": tru' }] }, { toolCalls: [{ name: 'echo', input: { a: true } }] }, { text: 'fixed it' });
  const run = await kit.agent.send({ text: 'x' }).done;
  assert.equal(run.text, 'fixed it');
  const [err] = lastToolResults(fake.requests[1].body);
  assert.equal(err.is_error, true);
  assert.match(err.content, /not valid JSON \(\{"a": tru\)/);
  assert.equal(fake.requests.length, 3);
});

test('an unknown tool name gets an error listing the available tools', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const kit = agentKit({ config: agentConfig(fake.url), tools: [echo] });
  t.after(kit.close);
  fake.push({ toolCalls: [{ name: 'rm_rf', input: {} }] }, { text: 'sorry' });
  const run = await kit.agent.send({ text: 'x' }).done;
  assert.equal(run.status, 'done');
  const [err] = lastToolResults(fake.requests[1].body);
  assert.equal(err.is_error, true);
  assert.match(err.content, /no tool named "rm_rf"\. Available tools: echo/);
});

test('huge tool arguments are refused before the tool runs', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const ran: unknown[] = [];
  const kit = agentKit({ config: agentConfig(fake.url), tools: [{ ...echo, run: (i: unknown) => (ran.push(i), 'ran') }] });
  t.after(kit.close);
  fake.push({ toolCalls: [{ name: 'echo', input: { blob: 'A'.repeat(200_000) } }] }, { text: 'ok' });
  const run = await kit.agent.send({ text: 'x' }).done;
  assert.equal(run.status, 'done');
  assert.equal(ran.length, 0);
  assert.match(lastToolResults(fake.requests[1].body)[0].content, /over the limit of 65536 bytes/);
  assert.ok(JSON.stringify(fake.requests[1].body).length < 10_000, 'the refused arguments are not sent back to the model');
});

test('arguments that are JSON but not an object are refused (openai wire)', async (t) => {
  const fake = await startFakeOpenAI();
  t.after(() => fake.close());
  const kit = agentKit({ config: agentConfig('http://127.0.0.1:9', fake.url, { model: 'openai/gpt-4.1-mini' }), tools: [echo] });
  t.after(kit.close);
  fake.push({ toolCalls: [{ name: 'echo', rawJson: '[1,2]' }] }, { text: 'done' });
  const run = await kit.agent.send({ text: 'x' }).done;
  assert.equal(run.text, 'done');
  const toolMsg = (fake.requests[1].body.messages as { role: string; content: string }[]).find((m) => m.role === 'tool')!;
  assert.match(toolMsg.content, /^ERROR: The arguments for echo must be a JSON object/);
});

test('a tool that throws becomes an error result without a stack, and the run goes on', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const kit = agentKit({ config: agentConfig(fake.url), tools: [{ ...echo, run: () => { throw new Error('disk full'); } }] });
  t.after(kit.close);
  fake.push({ toolCalls: [{ name: 'echo', input: {} }] }, { text: 'the tool failed' });
  const run = await kit.agent.send({ text: 'x' }).done;
  assert.equal(run.status, 'done');
  const [err] = lastToolResults(fake.requests[1].body);
  assert.equal(err.content, 'echo failed: disk full');
});
