import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startFakeAnthropic } from '../helpers/fake-anthropic.ts';
import { startFakeOpenAI } from '../helpers/fake-openai.ts';
import { agentKit, writeWorkspace, staticConfig, type ToolImpl } from '../helpers/agent-kit.ts';
import { agentConfig } from '../helpers/agent-config.ts';
import { resolveAgentId } from '../../core/agent/bindings.ts';

/** Resolves when `n` parties have arrived; fails (instead of hanging) if they never do. */
function barrier(n: number) {
  let arrived = 0;
  let release!: () => void;
  const all = new Promise<void>((r) => (release = r));
  return async () => {
    if (++arrived === n) release();
    const timeout = new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`only ${arrived} of ${n} arrived: runs did not overlap`)), 5000).unref());
    await Promise.race([all, timeout]);
  };
}

test('two sessions run concurrently', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const meet = barrier(2);
  const kit = agentKit({ config: agentConfig(fake.url), tools: [{ name: 'meet', description: 'm', input: { type: 'object' }, run: async () => (await meet(), 'met') }] });
  t.after(kit.close);
  fake.setDefault((req) => (JSON.stringify(req.body.messages).includes('met') ? { text: 'both done' } : { toolCalls: [{ name: 'meet', input: {} }] }));
  const a = kit.agent.send({ text: 'a', sessionKey: 'agent:main:webchat:dm:alice' });
  const b = kit.agent.send({ text: 'b', sessionKey: 'agent:main:webchat:dm:bob' });
  const [ra, rb] = await Promise.all([a.done, b.done]);
  assert.equal(ra.text, 'both done');
  assert.equal(rb.text, 'both done');
});

test("one session's messages are handled in order; a message sent mid-run waits as a follow-up", async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let slowStarted!: () => void;
  const started = new Promise<void>((r) => (slowStarted = r));
  const kit = agentKit({ config: agentConfig(fake.url), tools: [{ name: 'slow', description: 's', input: { type: 'object' }, run: async () => (slowStarted(), await gate, 'slow done') }] });
  t.after(kit.close);
  fake.push({ toolCalls: [{ name: 'slow', input: {} }] }, { text: 'answer 1' }, { text: 'answer 2' }, { text: 'answer 3' });
  const first = kit.agent.send({ text: 'message 1' });
  await started; // the first turn is mid-run, inside its tool call
  const second = kit.agent.send({ text: 'message 2' });
  const third = kit.agent.send({ text: 'message 3' });
  assert.equal(fake.requests.length, 1, 'follow-ups wait for the running turn');
  release();
  const runs = await Promise.all([first.done, second.done, third.done]);
  assert.deepEqual(runs.map((r) => r.text), ['answer 1', 'answer 2', 'answer 3']);
  const texts = kit.agent.history(first.sessionKey).flatMap((m) => m.message.content.filter((p) => p.type === 'text').map((p) => (p as { text: string }).text));
  assert.deepEqual(texts, ['message 1', 'answer 1', 'message 2', 'answer 2', 'message 3', 'answer 3']);
});

test('abort by runId stops a run waiting on the model, without falling back', async (t) => {
  const a = await startFakeAnthropic();
  const o = await startFakeOpenAI();
  t.after(() => a.close());
  t.after(() => o.close());
  const kit = agentKit({ config: agentConfig(a.url, o.url, {}, {}) });
  t.after(kit.close);
  (kit.ctx.config.current.providers.anthropic as { timeoutMs: number }).timeoutMs = 60_000;
  a.push({ hang: true });
  const { runId, done } = kit.agent.send({ text: 'hi' });
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(kit.agent.abort(runId), true);
  const run = await done;
  assert.equal(run.status, 'aborted');
  assert.equal(o.requests.length, 0);
  assert.equal(kit.agent.abort(runId), false, 'a finished run cannot be aborted');
});

test('abort during a tool call records the tool result and ends the run', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const waitAbort: ToolImpl = { name: 'wait', description: 'w', input: { type: 'object' }, run: (_i, ctx) => new Promise((r) => ctx.signal.addEventListener('abort', () => r('cancelled'))) };
  const kit = agentKit({ config: agentConfig(fake.url), tools: [waitAbort] });
  t.after(kit.close);
  fake.push({ toolCalls: [{ name: 'wait', input: {} }] });
  const { runId, done } = kit.agent.send({ text: 'go' });
  while (!kit.events.some((e) => e.stream === 'tool')) await new Promise((r) => setTimeout(r, 10));
  kit.agent.abort(runId);
  const run = await done;
  assert.equal(run.status, 'aborted');
  const last = kit.agent.history(run.sessionKey).at(-1)!.message;
  assert.equal(last.content[0].type, 'tool_result');
});

test('idleResetMinutes starts a fresh transcript after the session sat idle', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const kit = agentKit({ config: agentConfig(fake.url, undefined, {}, { session: { idleResetMinutes: 30 } }) });
  t.after(kit.close);
  fake.push({ text: 'one' }, { text: 'two' }, { text: 'three' });
  await kit.agent.send({ text: 'first' }).done;
  kit.clock.advance(10 * 60_000);
  await kit.agent.send({ text: 'second' }).done;
  assert.equal(fake.requests[1].body.messages.length, 3, 'within the idle window the transcript continues');
  kit.clock.advance(31 * 60_000);
  await kit.agent.send({ text: 'third' }).done;
  assert.equal(fake.requests[2].body.messages.length, 1, 'after the idle window it starts over');
  assert.ok(kit.events.some((e) => e.data.phase === 'session_reset'));
});

test('requireApproval asks the approver: a denial is told to the model and audited, an approval runs the tool', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const ran: unknown[] = [];
  let answer = false;
  const asked: string[] = [];
  const kit = agentKit({
    config: agentConfig(fake.url, undefined, { tools: { allow: ['*'], requireApproval: ['exec'] } }),
    tools: [{ name: 'exec', description: 'run', input: { type: 'object' }, run: (i: unknown) => (ran.push(i), 'ran') }],
    approver: { request: async (req) => (asked.push(req.tool), { approved: answer, ...(answer ? {} : { reason: 'not now' }) }) },
  });
  t.after(kit.close);
  fake.push({ toolCalls: [{ name: 'exec', input: { cmd: 'ls' } }] }, { text: 'denied' }, { toolCalls: [{ name: 'exec', input: { cmd: 'ls' } }] }, { text: 'approved' });
  await kit.agent.send({ text: 'ls' }).done;
  assert.equal(ran.length, 0);
  assert.match(JSON.stringify(fake.requests[1].body.messages.at(-1)), /did not approve exec: not now/);
  answer = true;
  await kit.agent.send({ text: 'ls again' }).done;
  assert.equal(ran.length, 1);
  assert.deepEqual(asked, ['exec', 'exec']);
  assert.deepEqual(kit.ctx.audit.list({}).map((r) => r.action), ['tool.denied', 'tool.approved']);
});

test('denied tools and tools outside the profile are never offered to the model', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const tool = (name: string): ToolImpl => ({ name, description: name, input: { type: 'object' }, run: () => 'x' });
  const kit = agentKit({
    config: agentConfig(fake.url, undefined, { tools: { profile: 'coding', allow: ['*'], deny: ['files.delete'] } }),
    tools: [tool('files.read'), tool('files.delete'), tool('exec'), tool('message.send')],
  });
  t.after(kit.close);
  fake.push({ toolCalls: [{ name: 'files_delete', input: {} }] }, { text: 'ok' });
  await kit.agent.send({ text: 'x' }).done;
  assert.deepEqual(fake.requests[0].body.tools.map((x: { name: string }) => x.name).sort(), ['exec', 'files_read']);
  assert.match(JSON.stringify(fake.requests[1].body.messages.at(-1)), /no tool named \\"files_delete\\"/);
});

test('each agent in agents.list has its own workspace and model; bindings route channels and peers', async (t) => {
  const a = await startFakeAnthropic();
  const o = await startFakeOpenAI();
  t.after(() => a.close());
  t.after(() => o.close());
  const config = agentConfig(a.url, o.url, {}, {
    bindings: [
      { agentId: 'main', match: { channel: '*' } },
      { agentId: 'work', match: { channel: 'slack' } },
      { agentId: 'work', match: { channel: 'telegram', peer: '42' } },
    ],
  });
  config.agents.list = [{ id: 'main' }, { id: 'work', model: 'openai/gpt-4.1-mini' } as { id: string }];
  const kit = agentKit({ config });
  t.after(kit.close);
  writeWorkspace(kit.home.paths.workspace, { 'SOUL.md': 'I am the home agent.' });
  writeWorkspace(join(kit.home.paths.root, 'agents', 'work', 'workspace'), { 'SOUL.md': 'I am the work agent.' });
  o.push({ text: 'work reply' });
  const run = await kit.agent.send({ text: 'status?', agentId: 'work' }).done;
  assert.equal(run.text, 'work reply');
  assert.equal(run.sessionKey, 'agent:work:main');
  assert.match(o.requests[0].body.messages[0].content, /I am the work agent\./);
  assert.equal(a.requests.length, 0);

  const c = staticConfig(config).current;
  assert.equal(resolveAgentId(c, { channel: 'slack' }), 'work');
  assert.equal(resolveAgentId(c, { channel: 'telegram', peer: '42' }), 'work');
  assert.equal(resolveAgentId(c, { channel: 'telegram', peer: '7' }), 'main');
  assert.equal(kit.agent.resolveAgent({ channel: 'webchat' }), 'main');
  assert.throws(() => kit.agent.send({ text: 'x', agentId: 'nobody' }), /no agent "nobody"/);
  assert.throws(() => kit.agent.send({ text: 'x', agentId: 'main', sessionKey: 'agent:work:main' }), /belongs to agent work/);
});
