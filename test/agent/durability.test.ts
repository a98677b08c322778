import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startFakeAnthropic } from '../helpers/fake-anthropic.ts';
import { agentKit, type ToolImpl } from '../helpers/agent-kit.ts';
import { agentConfig } from '../helpers/agent-config.ts';

const lookup: ToolImpl = { name: 'lookup', description: 'Look something up', input: { type: 'object' }, run: () => '42' };

/** Record, for every transaction the store commits, the synchronous level it ran at and the last message it left. */
function watchCommits(db: import('../../core/store/db.ts').Db) {
  const commits: { level: number; last: { role: string; content: string } | undefined }[] = [];
  const original = db.transaction.bind(db);
  (db as { transaction: unknown }).transaction = (fn: (...a: unknown[]) => unknown) =>
    original((...args: unknown[]) => {
      const out = fn(...args);
      commits.push({
        level: db.pragma('synchronous', { simple: true }) as number,
        last: db.prepare('SELECT role, content FROM agent_messages ORDER BY id DESC LIMIT 1').get() as { role: string; content: string } | undefined,
      });
      return out;
    });
  return commits;
}

test("the user's message is committed at synchronous=FULL; the assistant's reply and tool results without an fsync of their own", async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const kit = agentKit({ config: agentConfig(fake.url), tools: [lookup] });
  t.after(kit.close);
  fake.setDefault((req) => (JSON.stringify(req.body.messages).includes('tool_result') ? { text: 'Done: 42.' } : { toolCalls: [{ name: 'lookup', input: {} }] }));
  const commits = watchCommits(kit.ctx.db);
  const run = await kit.agent.send({ text: 'remember the milk', sessionKey: 'agent:main:webchat:dm:alice' }).done;
  assert.equal(run.status, 'done');
  const userCommit = commits.find((c) => c.last?.role === 'user' && c.last.content.includes('remember the milk'));
  assert.ok(userCommit, 'a transaction committed the user message');
  assert.equal(userCommit.level, 2, 'accepted user message: synchronous=FULL');
  const later = commits.slice(commits.indexOf(userCommit) + 1);
  assert.ok(later.some((c) => c.last?.role === 'assistant'), 'the reply was committed');
  for (const c of later) assert.equal(c.level, 1, 'regenerable writes: synchronous=NORMAL');
});

test('the connection is back at synchronous=FULL after a turn, so other owners of the database keep their durability', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const kit = agentKit({ config: agentConfig(fake.url), tools: [lookup] });
  t.after(kit.close);
  fake.setDefault((req) => (JSON.stringify(req.body.messages).includes('tool_result') ? { text: 'ok' } : { toolCalls: [{ name: 'lookup', input: {} }] }));
  await kit.agent.send({ text: 'hi', sessionKey: 'agent:main:webchat:dm:bob' }).done;
  assert.equal(kit.ctx.db.pragma('synchronous', { simple: true }), 2);
});

test('a failing relaxed write still restores synchronous=FULL', (t) => {
  const kit = agentKit({ config: agentConfig('http://127.0.0.1:9') });
  t.after(kit.close);
  assert.throws(() => kit.agent.store.relaxed(() => { throw new Error('boom'); }), /boom/);
  assert.equal(kit.ctx.db.pragma('synchronous', { simple: true }), 2);
});

test('the transcript a run builds in memory is what a re-read of the store gives', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const kit = agentKit({ config: agentConfig(fake.url), tools: [lookup] });
  t.after(kit.close);
  const seen: unknown[] = [];
  fake.setDefault((req) => {
    seen.push(req.body.messages);
    return JSON.stringify(req.body.messages.at(-1)).includes('tool_result') ? { text: 'second' } : { toolCalls: [{ name: 'lookup', input: { q: 1 } }] };
  });
  const key = 'agent:main:webchat:dm:carol';
  await kit.agent.send({ text: 'one', sessionKey: key }).done;
  await kit.agent.send({ text: 'two', sessionKey: key }).done;
  // The second run's first request carries the whole first run, as the store holds it.
  const stored = kit.agent.history(key).map((m) => m.message.role);
  assert.deepEqual(stored, ['user', 'assistant', 'user', 'assistant', 'user', 'assistant', 'user', 'assistant']);
  const lastRequest = seen.at(-1) as { role: string }[];
  assert.equal(lastRequest.length, 7, 'the final request holds every message before the reply');
});
