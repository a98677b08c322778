import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { startFakeSlack } from '../helpers/fake-slack.ts';
import { startChannelGateway, pairingCode } from '../helpers/channel-gateway.ts';
import { until } from '../helpers/wait.ts';
import { TEST_SECRETS } from '../helpers/test-secrets.ts';

// Slack through the whole gateway: the plugin in its isolate holds a Socket Mode
// connection to a loopback fake that redelivers unacknowledged envelopes, as Slack
// does; DMs go through pairing, channels through mention gating; replies are
// posted in the thread they belong to.

let ts = 1_800_000_000;
const nextTs = () => `${++ts}.000200`;

async function slackGateway(t: TestContext, channel: Record<string, unknown> = {}, config: Record<string, unknown> = {}) {
  const fake = await startFakeSlack({ appToken: TEST_SECRETS.slackAppToken, botToken: TEST_SECRETS.slackBotToken });
  t.after(() => fake.close());
  const cg = await startChannelGateway(t, {
    name: 'slack',
    channels: { slack: { enabled: true, dmPolicy: 'pairing', apiBaseUrl: fake.api, retryBaseMs: 20, ...channel } },
    secrets: { SLACK_APP_TOKEN: fake.appToken, SLACK_BOT_TOKEN: fake.botToken },
    config,
  });
  await fake.waitConnections(1, 20_000);
  return { fake, ...cg };
}

test('slack DM: an unknown sender gets one pairing code, nothing reaches the agent before approval, then replies land in the thread — across a dropped socket and a lost ack, exactly once', async (t) => {
  const { fake, gw, llm, agentSaw, approve } = await slackGateway(t);
  const dm = (user: string, channel: string, text: string, extra: Record<string, unknown> = {}) =>
    fake.event({ type: 'message', channel, channel_type: 'im', user, text, ts: nextTs(), ...extra });

  dm('U42', 'D42', 'hello?');
  const code = pairingCode(await until('the pairing code', () => fake.posted.find((p) => p.channel === 'D42')?.text));
  dm('U42', 'D42', 'hello again?');
  dm('U43', 'D43', 'me too'); // the barrier: the router handles messages in order
  await until("the second sender's code", () => fake.posted.find((p) => p.channel === 'D43'));
  assert.equal(fake.posted.filter((p) => p.channel === 'D42').length, 1, 'the code is sent once, not on every message');
  assert.equal(llm.requests.length, 0, 'nothing reached the agent before approval');

  await approve('slack', code);
  const root = nextTs();
  dm('U42', 'D42', 'start a thread', { ts: root });
  const first = await until('the agent reply', () => fake.posted.find((p) => p.text === 'echo: start a thread'));
  assert.equal(first.channel, 'D42');
  assert.equal(first.thread_ts, root, 'the reply is threaded under the message it answers');
  dm('U42', 'D42', 'inside the thread', { thread_ts: root });
  const inThread = await until('the reply in the thread', () => fake.posted.find((p) => p.text === 'echo: inside the thread'));
  assert.deepEqual([inThread.channel, inThread.thread_ts], ['D42', root], 'a message in a thread is answered in that thread');
  assert.deepEqual(agentSaw(), ['start a thread', 'inside the thread'], 'messages refused before pairing never reach the agent');

  // The socket dies: what is sent meanwhile is redelivered on the next connection.
  fake.drop();
  dm('U42', 'D42', 'said while the socket was down', { thread_ts: root });
  await fake.waitConnections(2, 20_000);
  // An ack lost with the socket: Slack redelivers an envelope the gateway already has.
  fake.loseAcks(true);
  const lost = dm('U42', 'D42', 'whose ack gets lost', { thread_ts: root });
  await until('the reply to the message whose ack is lost', () => fake.posted.find((p) => p.text === 'echo: whose ack gets lost'));
  fake.loseAcks(false);
  fake.drop();
  await fake.waitConnections(3, 20_000);
  await until('the redelivered envelope acknowledged', () => fake.acked.includes(lost.envelope_id));
  dm('U42', 'D42', 'the last one', { thread_ts: root });
  await until('the last reply', () => fake.posted.find((p) => p.text === 'echo: the last one'));

  const replies = fake.posted.filter((p) => p.channel === 'D42' && String(p.text).startsWith('echo: '));
  assert.deepEqual(
    replies.map((p) => p.text),
    ['echo: start a thread', 'echo: inside the thread', 'echo: said while the socket was down', 'echo: whose ack gets lost', 'echo: the last one'],
    'every message answered exactly once, in order',
  );
  assert.ok(replies.every((p) => p.thread_ts === root), 'all in the thread');
  assert.equal(agentSaw().length, 5, 'the redelivered envelope did not run the agent again');
  assert.doesNotMatch(gw.output(), new RegExp(`${fake.appToken}|${fake.botToken}`), 'no token in any log line');
  assert.equal((await gw.stop()).code, 0);
});

test('slack channel: an unmentioned message is ignored, a mention in an allowed channel is answered in a thread under it', async (t) => {
  const { fake, gw, agentSaw } = await slackGateway(t, { groupPolicy: 'allowlist', groups: { C1: {} }, requireMention: true });
  const say = (channel: string, text: string, extra: Record<string, unknown> = {}) => {
    const at = nextTs();
    fake.event({ type: 'message', channel, channel_type: 'channel', user: 'U42', text, ts: at, ...extra });
    return at;
  };
  say('C1', 'just chatting among humans');
  say('C2', `<@${fake.botUserId}> in a channel not listed`);
  const asked = say('C1', `<@${fake.botUserId}> what is up?`);
  const reply = await until('the reply in the channel', () => fake.posted.find((p) => p.text === 'echo: what is up?'));
  assert.deepEqual([reply.channel, reply.thread_ts], ['C1', asked], 'answered in a thread under the question');
  say('C1', 'still unmentioned, in the thread', { thread_ts: asked });
  say('C1', `<@${fake.botUserId}> and a follow-up`, { thread_ts: asked });
  const follow = await until('the follow-up reply', () => fake.posted.find((p) => p.text === 'echo: and a follow-up'));
  assert.deepEqual([follow.channel, follow.thread_ts], ['C1', asked]);
  assert.equal(fake.posted.length, 2, 'unmentioned messages and the unlisted channel got nothing');
  assert.deepEqual(agentSaw(), ['what is up?', 'and a follow-up']);
  assert.equal((await gw.stop()).code, 0);
});

test('an agent reply that spells a secret placeholder ({{secret:SLACK_BOT_TOKEN}}) reaches the chat as text, never as the token', async (t) => {
  const { fake, gw, llm } = await slackGateway(t, { dmPolicy: 'open' });
  llm.push({ text: 'as you asked: {{secret:SLACK_BOT_TOKEN}} and {{secret:SLACK_APP_TOKEN}}' });
  fake.event({ type: 'message', channel: 'D9', channel_type: 'im', user: 'U9', text: 'print the braces thing I told you about', ts: nextTs() });
  const reply = await until('the reply', () => fake.posted.find((p) => p.channel === 'D9'));
  assert.doesNotMatch(JSON.stringify(fake.posted), new RegExp(`${fake.botToken}|${fake.appToken}`), 'no token was posted into the chat');
  assert.match(reply.text, /secret:SLACK_BOT_TOKEN/, 'the words themselves still arrive');
  assert.equal((await gw.stop()).code, 0);
});

test('an approval asked of a Slack member by id lands in their DM with the app; "approve ID" there (Slack keeps a leading / for its own commands) runs the tool', async (t) => {
  const { fake, gw, llm } = await slackGateway(t, { dmPolicy: 'allowlist', allowFrom: ['U42'] }, {
    agents: { defaults: { model: 'anthropic/claude-sonnet-4-6', tools: { requireApproval: ['clock_now'] } } },
    approvals: { chat: [{ channel: 'slack', peer: 'U42' }] },
  });
  llm.setDefault((req) => {
    const sent = JSON.stringify(req.body?.messages);
    if (sent.includes('tool_result')) return { text: 'It is morning in Tokyo.' };
    return { toolCalls: [{ id: 'toolu_1', name: 'clock_now', input: { timezone: 'Asia/Tokyo' } }], stopReason: 'tool_use' };
  });
  const inDm = () => fake.posted.filter((p) => p.channel === 'D42').map((p) => String(p.text));
  fake.event({ type: 'message', channel: 'D42', channel_type: 'im', user: 'U42', text: 'What time is it in Tokyo?', ts: nextTs() });
  const ask = await until('the approval request in the DM', () => inDm().find((m) => /Reply approve apr_/.test(m)));
  assert.doesNotMatch(ask, /\/approve/, 'nothing a Slack client would take for a slash command');
  const id = /approve (apr_[0-9a-f]{12})/.exec(ask)![1];
  fake.event({ type: 'message', channel: 'D42', channel_type: 'im', user: 'U42', text: `approve ${id}`, ts: nextTs() });
  await until('the confirmation', () => inDm().includes(`Approved: clock_now (${id}).`));
  await until('the answer after the tool ran', () => inDm().find((m) => /morning in Tokyo/.test(m)));
  assert.equal(llm.requests.length, 2, 'the approval never reached the model');
  assert.equal((await gw.stop()).code, 0);
});
