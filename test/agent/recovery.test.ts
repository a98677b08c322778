import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startFakeAnthropic } from '../helpers/fake-anthropic.ts';
import { agentKit } from '../helpers/agent-kit.ts';
import { agentConfig } from '../helpers/agent-config.ts';
import { tempHome } from '../helpers/home.ts';

// "An accepted message is never silently dropped": a message queued behind a
// running turn is durable from the moment send() returns, and a restart runs it.

test('a message accepted while another turn runs is run after a crash, and the interrupted turn is not re-run', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const home = tempHome('recovery');
  t.after(home.cleanup);
  let inTool!: () => void;
  const toolEntered = new Promise<void>((r) => (inTool = r));
  const never = new Promise<string>(() => {});
  const before = agentKit({ config: agentConfig(fake.url), home, tools: [{ name: 'hang', description: 'h', input: { type: 'object' }, run: async () => (inTool(), never) }] });
  fake.push({ toolCalls: [{ name: 'hang', input: {} }] });
  before.agent.send({ text: 'message 1', origin: { reply: { channel: 'test', chatId: 'c1' } } });
  await toolEntered;
  const second = before.agent.send({ text: 'message 2', origin: { reply: { channel: 'test', chatId: 'c2' } } });
  assert.equal(fake.requests.length, 1, 'message 2 waits behind the running turn');
  // Crash: the process is gone without stopping anything; only the database remains.
  before.close();

  fake.push({ text: 'answer 2' });
  const after = agentKit({ config: agentConfig(fake.url), home });
  t.after(after.close);
  const run2 = await waitForRun(after, second.runId);
  assert.equal(run2, 'done');
  assert.equal(fake.requests.length, 2, 'only message 2 was sent to the model again');
  assert.match(JSON.stringify(fake.requests[1].body.messages), /message 2/);
  const texts = after.agent.history(second.sessionKey).flatMap((m) => m.message.content.filter((p) => p.type === 'text').map((p) => (p as { text: string }).text));
  assert.deepEqual(texts.filter((x) => /message|answer/.test(x)), ['message 1', 'message 2', 'answer 2']);
  assert.equal(after.agent.store.pendingInputs().length, 0, 'nothing is left waiting');
});

async function waitForRun(kit: ReturnType<typeof agentKit>, runId: string): Promise<string> {
  for (let i = 0; i < 400; i++) {
    const ev = kit.events.find((e) => e.runId === runId && e.stream === 'lifecycle' && e.data.phase === 'end');
    if (ev) return String(ev.data.status);
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`run ${runId} did not end`);
}

test('a recovered turn is handed to onRecovered with the origin it was accepted with', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const home = tempHome('recovery');
  t.after(home.cleanup);
  const before = agentKit({ config: agentConfig(fake.url), home });
  // Accepted, then the process dies before the turn could start.
  before.agent.store.accept({ runId: 'run-x', sessionKey: 'agent:main:main', agentId: 'main', text: 'remember me', origin: { reply: { channel: 'telegram', chatId: '42' } }, acceptedAt: Date.now() });
  before.close();

  fake.push({ text: 'remembered' });
  const seen: { runId: string; origin: unknown }[] = [];
  const after = agentKit({ config: agentConfig(fake.url), home, beforeStart: (agent) => agent.onRecovered((r, origin) => seen.push({ runId: r.runId, origin })) });
  t.after(after.close);
  assert.deepEqual(seen, [{ runId: 'run-x', origin: { reply: { channel: 'telegram', chatId: '42' } } }]);
  assert.equal(await waitForRun(after, 'run-x'), 'done');
});

test('a graceful stop keeps queued accepted messages for the next start', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const home = tempHome('recovery');
  t.after(home.cleanup);
  let inTool!: () => void;
  const toolEntered = new Promise<void>((r) => (inTool = r));
  const kit = agentKit({
    config: agentConfig(fake.url),
    home,
    tools: [{ name: 'wait', description: 'w', input: { type: 'object' }, run: (_i, ctx) => (inTool(), new Promise<string>((r) => ctx.signal.addEventListener('abort', () => r('stopped')))) }],
  });
  t.after(kit.close);
  fake.push({ toolCalls: [{ name: 'wait', input: {} }] });
  const first = kit.agent.send({ text: 'message 1' });
  await toolEntered;
  const second = kit.agent.send({ text: 'message 2' });
  await kit.agent.stop!();
  await Promise.all([first.done, second.done]);
  assert.deepEqual(kit.agent.store.pendingInputs().map((i) => i.runId), [second.runId], 'message 2 waits for the next start');
});

test('messages accepted before start() are run once, not again as if left by a crash', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  fake.setDefault(() => ({ text: 'ok' }));
  const receipts: { runId: string }[] = [];
  const kit = agentKit({
    config: agentConfig(fake.url),
    beforeStart: (agent) => receipts.push(agent.send({ text: 'early 1' }), agent.send({ text: 'early 2' })),
  });
  t.after(kit.close);
  for (const r of receipts) assert.equal(await waitForRun(kit, r.runId), 'done');
  await new Promise((r) => setTimeout(r, 200));
  for (const r of receipts) {
    const ends = kit.events.filter((e) => e.runId === r.runId && e.stream === 'lifecycle' && e.data.phase === 'end');
    assert.equal(ends.length, 1, `run ${r.runId} ended once`);
  }
  assert.equal(fake.requests.length, 2);
});
