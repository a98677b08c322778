import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startFakeDiscord, type FakeDiscord } from '../helpers/fake-discord.ts';
import { startChannelGateway, pairingCode } from '../helpers/channel-gateway.ts';
import { until } from '../helpers/wait.ts';
import { TEST_SECRETS } from '../helpers/test-secrets.ts';

// Discord through the whole gateway: the plugin in its isolate holds a Gateway
// session with a loopback fake; DMs go through pairing, guild channels through
// mention gating; replies go back through the durable delivery queue to the
// channel the message came from, also across a dropped Gateway socket (RESUME
// replays what was said meanwhile).

const alice = { id: '42', username: 'alice', global_name: 'Alice' };
const bob = { id: '43', username: 'bob', global_name: 'Bob' };
const ALICE_DM = '9001';
const BOB_DM = '9002';
const GUILD = '500';
const GROUP = '777';

async function discordGateway(t: import('node:test').TestContext, channel: Record<string, unknown> = {}, config?: Record<string, unknown>) {
  const fake = await startFakeDiscord({ token: TEST_SECRETS.discordToken });
  t.after(() => fake.close());
  const cg = await startChannelGateway(t, {
    name: 'discord',
    channels: { discord: { enabled: true, dmPolicy: 'pairing', apiBaseUrl: fake.api, retryBaseMs: 20, invalidSessionDelayMs: 20, ...channel } },
    secrets: { DISCORD_BOT_TOKEN: fake.token },
    config,
  });
  await fake.waitReady(1, 20_000);
  return { fake, ...cg };
}

const postsTo = (fake: FakeDiscord, channelId: string) => fake.posted.filter((p) => p.channelId === channelId).map((p) => String(p.body.content));

test('discord DM: an unknown sender gets one pairing code, nothing reaches the agent before approval, then replies come back to the DM — also across a dropped Gateway socket, exactly once', async (t) => {
  const { fake, gw, llm, agentSaw, approve } = await discordGateway(t);

  fake.message({ channel_id: ALICE_DM, author: alice, content: 'hello?' });
  const codeText = await until('the pairing code', () => postsTo(fake, ALICE_DM)[0]);
  const code = pairingCode(codeText);
  fake.message({ channel_id: ALICE_DM, author: alice, content: 'hello again?' });
  // Bob's code is the barrier: the router handles inbound messages in order.
  fake.message({ channel_id: BOB_DM, author: bob, content: 'me too' });
  await until("Bob's pairing code", () => postsTo(fake, BOB_DM)[0]);
  assert.equal(postsTo(fake, ALICE_DM).length, 1, 'the code is sent once, not on every message');
  assert.equal(llm.requests.length, 0, 'nothing reached the agent before approval');

  await approve('discord', code);
  fake.message({ channel_id: ALICE_DM, author: alice, content: 'can you hear me?' });
  await until('the agent reply', () => postsTo(fake, ALICE_DM).find((c) => c === 'echo: can you hear me?'));
  assert.deepEqual(agentSaw(), ['can you hear me?'], 'messages refused before pairing never reach the agent');

  fake.drop();
  fake.message({ channel_id: ALICE_DM, author: alice, content: 'said while the socket was down' });
  await fake.waitReady(2, 20_000);
  assert.equal(fake.resumes, 1, 'the plugin resumed its session instead of starting a new one');
  fake.message({ channel_id: ALICE_DM, author: alice, content: 'and after the reconnect' });
  await until('the reply after the reconnect', () => postsTo(fake, ALICE_DM).find((c) => c === 'echo: and after the reconnect'));
  const replies = postsTo(fake, ALICE_DM).filter((c) => c.startsWith('echo: '));
  assert.deepEqual(replies, ['echo: can you hear me?', 'echo: said while the socket was down', 'echo: and after the reconnect'], 'each message answered exactly once, in order');
  assert.equal(agentSaw().filter((s) => s === 'said while the socket was down').length, 1, 'the replayed message ran the agent once');
  for (const p of fake.posted) assert.ok([ALICE_DM, BOB_DM].includes(p.channelId), `posted only to the DM channels, not to ${p.channelId}`);
  assert.doesNotMatch(gw.output(), new RegExp(fake.token), 'the bot token is in no log line');
  assert.equal((await gw.stop()).code, 0);
});

test('discord guild channel: an unmentioned message is ignored, a mention in an allowed channel is answered there', async (t) => {
  const { fake, gw, agentSaw } = await discordGateway(t, { groupPolicy: 'allowlist', groups: { [GROUP]: {} }, requireMention: true });
  const botMention = { id: fake.bot.id, username: fake.bot.username, bot: true };

  fake.message({ guild_id: GUILD, channel_id: GROUP, author: alice, content: 'just chatting among humans' });
  fake.message({ guild_id: GUILD, channel_id: '778', author: alice, content: `<@${fake.bot.id}> in a channel not listed`, mentions: [botMention] });
  fake.message({ guild_id: GUILD, channel_id: GROUP, author: alice, content: `<@${fake.bot.id}> what is up?`, mentions: [botMention] });
  const reply = await until('the reply in the guild channel', () => fake.posted.find((p) => p.body.content === 'echo: what is up?'));
  assert.equal(reply.channelId, GROUP, 'the reply goes to the channel it was asked in');
  assert.equal(fake.posted.length, 1, 'the unmentioned message and the unlisted channel got nothing');
  assert.deepEqual(agentSaw(), ['what is up?']);
  assert.equal((await gw.stop()).code, 0);
});

test('an approval asked of a Discord owner named by user id (approvals.chat without chatId) goes to the DM Discord opens for them; /approve there runs the tool', async (t) => {
  const { fake, llm } = await discordGateway(t, { dmPolicy: 'allowlist', allowFrom: [alice.id] }, {
    agents: { defaults: { model: 'anthropic/claude-sonnet-4-6', tools: { requireApproval: ['clock_now'] } } },
    approvals: { chat: [{ channel: 'discord', peer: alice.id }] },
  });
  llm.setDefault((req) => {
    const sent = JSON.stringify(req.body?.messages);
    if (sent.includes('tool_result')) return { text: 'It is morning in Tokyo.' };
    return { toolCalls: [{ id: 'toolu_1', name: 'clock_now', input: { timezone: 'Asia/Tokyo' } }], stopReason: 'tool_use' };
  });
  fake.message({ channel_id: ALICE_DM, author: alice, content: 'What time is it in Tokyo?' });
  const ask = await until('the approval request in the owner\'s DM', () => postsTo(fake, ALICE_DM).find((m) => /Reply approve apr_/.test(m)));
  assert.equal(fake.posted.some((p) => p.channelId === alice.id), false, 'nothing was left addressed to the user id');
  const id = /approve (apr_[0-9a-f]{12})/.exec(ask)![1];
  fake.message({ channel_id: ALICE_DM, author: alice, content: `/approve ${id}` });
  await until('the confirmation', () => postsTo(fake, ALICE_DM).includes(`Approved: clock_now (${id}).`));
  await until('the answer after the tool ran', () => postsTo(fake, ALICE_DM).find((m) => /morning in Tokyo/.test(m)));
});
