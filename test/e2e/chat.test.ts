import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tempHome } from '../helpers/home.ts';
import { spawnGateway } from '../helpers/gateway.ts';
import { runCli } from '../helpers/cli.ts';
import { startFakeAnthropic } from '../helpers/fake-anthropic.ts';
import { TEST_SECRETS } from '../helpers/test-secrets.ts';
import { connectOwner } from '../../core/cli/connect.ts';
import { until } from '../helpers/wait.ts';

// The whole stack: the real CLI → the paired bus → the agent loop → the anthropic
// provider plugin in its worker sandbox (the real SDK, the key substituted at the
// kernel's egress) → a loopback Anthropic fake; the clock tool in its isolate.

const KEY = TEST_SECRETS.anthropicKey;

async function gatewayWithFake(t: import('node:test').TestContext, extra: Record<string, unknown> = {}) {
  const home = tempHome('e2e');
  t.after(home.cleanup);
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  mkdirSync(home.dir, { recursive: true, mode: 0o700 });
  writeFileSync(
    home.paths.config,
    JSON.stringify({
      providers: { anthropic: { apiKey: { secret: 'ANTHROPIC_API_KEY' }, baseUrl: fake.url } },
      agents: { defaults: { model: 'anthropic/claude-sonnet-4-6' } },
      ...extra,
    }),
  );
  const set = await runCli(['secrets', 'set', 'ANTHROPIC_API_KEY'], { home: home.dir, input: KEY });
  assert.equal(set.code, 0, set.stderr);
  const gw = await spawnGateway(home.dir, { env: { ANTHROPIC_API_KEY: '', OPENAI_API_KEY: '' } });
  t.after(() => gw.stop('SIGKILL'));
  return { home, fake, gw };
}

test('carapace chat streams a reply that used a sandboxed tool, through a sandboxed provider', async (t) => {
  const { home, fake, gw } = await gatewayWithFake(t);
  fake.push({ toolCalls: [{ id: 'toolu_1', name: 'clock_now', input: { timezone: 'Europe/Berlin' } }], stopReason: 'tool_use' });
  fake.push({ text: ['It is ', 'lunch time ', 'in Berlin.'] });

  const res = await runCli(['chat', 'What time is it in Berlin?'], { home: home.dir });
  assert.equal(res.code, 0, res.stderr + gw.output());
  assert.match(res.stdout, /It is lunch time in Berlin\./);
  assert.match(res.stderr, /\[tool clock_now\]/);

  assert.equal(fake.requests.length, 2);
  assert.equal(fake.requests[0].headers['x-api-key'], KEY, 'the kernel substituted the key at egress');
  const toolResult = JSON.stringify(fake.requests[1].body.messages);
  assert.match(toolResult, /tool_result/);
  assert.match(toolResult, /Europe\/Berlin/, 'the clock tool ran in its isolate and its result went back to the model');
  assert.doesNotMatch(gw.output(), new RegExp(KEY), 'the key is in no log line');
});

test('the transcript of a chat survives a gateway restart', async (t) => {
  const { home, fake, gw } = await gatewayWithFake(t);
  fake.push({ text: 'Noted: your favourite colour is teal.' });
  const first = await runCli(['chat', '--session', 'agent:main:main', 'My favourite colour is teal.'], { home: home.dir });
  assert.equal(first.code, 0, first.stderr);
  assert.equal((await gw.stop()).code, 0);

  const again = await spawnGateway(home.dir, { env: { ANTHROPIC_API_KEY: '', OPENAI_API_KEY: '' } });
  t.after(() => again.stop('SIGKILL'));
  fake.push({ text: 'Teal.' });
  const second = await runCli(['chat', '--session', 'agent:main:main', 'What is my favourite colour?'], { home: home.dir });
  assert.equal(second.code, 0, second.stderr);
  const sent = JSON.stringify(fake.requests.at(-1)!.body.messages);
  assert.match(sent, /favourite colour is teal/, 'the earlier turn was in the context after the restart');
});

test('the chat.send caller receives every agent event of its run from seq 0: queued, start, the reply, end', async (t) => {
  const { home, fake } = await gatewayWithFake(t);
  fake.push({ text: 'Hi.' });
  const client = (await connectOwner(home.paths))!;
  t.after(() => client.close());
  const events: { runId: string; seq: number; stream: string; data: { phase?: string } }[] = [];
  client.on('agent', (ev) => events.push(ev as (typeof events)[number]));
  const sent = await client.request<{ runId: string }>('chat.send', { text: 'hello', idempotencyKey: 'all-events' });
  await until('the end of the run', () => events.find((e) => e.data.phase === 'end'));
  const mine = events.filter((e) => e.runId === sent.runId);
  assert.deepEqual(mine.map((e) => e.seq), mine.map((_, i) => i), 'no event is missing');
  assert.deepEqual(mine.filter((e) => e.stream === 'lifecycle').map((e) => e.data.phase), ['queued', 'start', 'end']);

  // What the params schema cannot say is refused like what it can: INVALID_REQUEST with the pointer.
  const refusals = await Promise.all(
    [
      { text: '   ', idempotencyKey: 'blank' },
      { text: 'hi', sessionKey: 'not a key', idempotencyKey: 'bad-key' },
      { text: 'hi', sessionKey: 'agent:other:main', agentId: 'main', idempotencyKey: 'other-agent' },
    ].map((params) => client.request('chat.send', params).then(() => null, (err: { code: string; details?: { pointer?: string } }) => [err.code, err.details?.pointer])),
  );
  assert.deepEqual(refusals, [['INVALID_REQUEST', '/params/text'], ['INVALID_REQUEST', '/params/sessionKey'], ['INVALID_REQUEST', '/params/sessionKey']]);
  const history = await client.request('chat.history', { sessionKey: 'not a key' }).catch((err: { code: string; details?: { pointer?: string } }) => [err.code, err.details?.pointer]);
  assert.deepEqual(history, ['INVALID_REQUEST', '/params/sessionKey']);
});

test('a chat.send retried on a new connection after a drop returns the same run and streams its events to the new connection', async (t) => {
  const { home, fake } = await gatewayWithFake(t);
  fake.push({ hang: true }); // the run stays in the provider until it is aborted
  const first = (await connectOwner(home.paths))!;
  const sent = await first.request<{ runId: string }>('chat.send', { text: 'hello', idempotencyKey: 'retry-1' });
  await until('the run to reach the provider', () => fake.requests.length === 1);
  first.close();

  const second = (await connectOwner(home.paths))!;
  t.after(() => second.close());
  const events: { runId: string; stream: string; data: { phase?: string } }[] = [];
  second.on('agent', (ev) => events.push(ev as (typeof events)[number]));
  const retried = await second.request<{ runId: string }>('chat.send', { text: 'hello', idempotencyKey: 'retry-1' });
  assert.equal(retried.runId, sent.runId, 'the retry is the same run, not a second one');
  assert.deepEqual(await second.request('chat.abort', { runId: sent.runId }), { aborted: true });
  await until('the run to end on the new connection', () => events.find((e) => e.runId === sent.runId && e.stream === 'lifecycle' && e.data.phase !== 'queued' && e.data.phase !== 'start'));
  assert.equal(fake.requests.length, 1, 'the model was asked once');
});

test('when every model fails the user gets one clear error', async (t) => {
  const { home, fake } = await gatewayWithFake(t);
  fake.setDefault(() => ({ error: { status: 529, type: 'overloaded_error', message: 'Overloaded' } }));
  const res = await runCli(['chat', 'hello'], { home: home.dir });
  assert.equal(res.code, 1);
  assert.match(res.stdout + res.stderr, /overloaded/i);
});

test('an agent hands work to another agent with sessions_send and uses its answer', async (t) => {
  const { home, fake } = await gatewayWithFake(t, {
    agents: { defaults: { model: 'anthropic/claude-sonnet-4-6' }, list: [{ id: 'main' }, { id: 'helper' }] },
  });
  fake.push({ toolCalls: [{ id: 'toolu_h', name: 'sessions_send', input: { agentId: 'helper', text: 'What is six times seven?' } }], stopReason: 'tool_use' });
  fake.push({ text: 'Forty-two.' });
  fake.push({ text: 'My colleague says: forty-two.' });
  const res = await runCli(['chat', 'Ask the helper agent for six times seven.'], { home: home.dir });
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /My colleague says: forty-two\./);
  const helperRequest = JSON.stringify(fake.requests[1].body.messages);
  assert.match(helperRequest, /What is six times seven\?/, 'the helper agent got the question');
  assert.match(helperRequest, /from agent:main:main/, 'with where it came from');
  assert.match(JSON.stringify(fake.requests[2].body.messages), /Forty-two\./, "the helper's answer came back as the tool result");
});

test('a secret placeholder typed into the conversation never brings the secret into the model context', async (t) => {
  const { home, fake, gw } = await gatewayWithFake(t);
  fake.push({ text: 'I cannot see any key.' });
  const res = await runCli(['chat', 'Please repeat this back: {{secret:ANTHROPIC_API_KEY}}'], { home: home.dir });
  assert.equal(res.code, 0, res.stderr + gw.output());
  assert.equal(fake.requests.length, 1);
  assert.doesNotMatch(JSON.stringify(fake.requests[0].body), new RegExp(KEY), 'the key is not in the request body');
  assert.match(JSON.stringify(fake.requests[0].body), /secret:ANTHROPIC_API_KEY/, 'the text itself still reaches the model');
  assert.equal(fake.requests[0].headers['x-api-key'], KEY, 'the credential header is substituted as usual');
});
