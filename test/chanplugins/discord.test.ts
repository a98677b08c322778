import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { createSandbox, type Sandbox } from '../helpers/plugin-sandbox-stub.ts';
import { startFakeDiscord, type FakeDiscord } from '../helpers/fake-discord.ts';
import { assertInbound } from '../helpers/inbound-shape.ts';
import type * as Discord from '../../plugins/channels/discord/index.js';

const ENTRY = fileURLToPath(new URL('../../plugins/channels/discord/index.js', import.meta.url));
type Plugin = typeof Discord;

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(opts: { kv?: Map<string, unknown>; fake?: FakeDiscord; heartbeatMs?: number; token?: string } = {}) {
  const fake = opts.fake ?? (await startFakeDiscord({ heartbeatMs: opts.heartbeatMs }));
  if (!opts.fake) cleanups.push(() => fake.close());
  const sb = createSandbox({
    config: { apiBaseUrl: fake.api, retryBaseMs: 20, invalidSessionDelayMs: 20, ...(opts.token ? { gatewayUrl: fake.gateway } : {}) },
    secrets: { DISCORD_BOT_TOKEN: opts.token ?? fake.token },
    kv: opts.kv,
  });
  const plugin = sb.load<Plugin>(ENTRY);
  cleanups.push(async () => {
    await plugin.stop();
    sb.close();
  });
  await plugin.start({ config: sb.carapace.config });
  return { fake, sb, plugin };
}

const alice = { id: '42', username: 'alice', global_name: 'Alice' };
const texts = (sb: Sandbox) => sb.published.map((p) => (p.payload as { text: string }).text);
async function inbound(sb: Sandbox, n: number) {
  return (await sb.waitForPublished('channel.inbound', n)).map(assertInbound);
}

test('a direct message becomes a valid InboundMessage after IDENTIFY and READY', async () => {
  const { fake, sb } = await setup();
  await fake.waitReady();
  const identify = fake.received.find((f) => f.op === 2);
  assert.equal(identify?.d.token, fake.token);
  assert.ok((identify?.d.intents & (1 << 15)) !== 0, 'asks for MESSAGE_CONTENT');
  const sent = fake.message({ channel_id: '77', author: alice, content: 'hello there' });
  const [m] = await inbound(sb, 1);
  assert.deepEqual(
    { channel: m.channel, chatId: m.chatId, chatType: m.chatType, sender: m.sender, text: m.text, id: m.platformMessageId, mentioned: m.mentioned },
    { channel: 'discord', chatId: '77', chatType: 'direct', sender: { id: '42', username: 'alice', name: 'Alice' }, text: 'hello there', id: sent.id, mentioned: undefined },
  );
});

test('guild messages: a <@bot> mention or a reply to the bot sets mentioned; the bot\'s own messages are ignored', async () => {
  const { fake, sb } = await setup();
  await fake.waitReady();
  const bot = { ...fake.bot, bot: true };
  fake.message({ guild_id: '9', channel_id: '88', author: alice, content: `<@${fake.bot.id}> what time is it`, mentions: [bot] });
  fake.message({ guild_id: '9', channel_id: '88', author: bot, content: 'my own reply' });
  fake.message({ guild_id: '9', channel_id: '88', author: alice, content: 'talking among humans' });
  fake.message({ guild_id: '9', channel_id: '88', author: alice, content: 'thanks', message_reference: { message_id: '4999' }, referenced_message: { id: '4999', author: bot } });
  const ms = await inbound(sb, 3);
  assert.deepEqual(ms.map((m) => [m.chatType, m.text, m.mentioned]), [
    ['group', 'what time is it', true],
    ['group', 'talking among humans', false],
    ['group', 'thanks', true],
  ]);
  assert.equal(ms[2].replyTo, '4999');
});

test('heartbeats carry the last sequence and are acknowledged', async () => {
  const { fake, sb } = await setup({ heartbeatMs: 50 });
  await fake.waitReady();
  fake.message({ channel_id: '77', author: alice, content: 'one' });
  await inbound(sb, 1);
  await new Promise<void>((resolve) => {
    const t = setInterval(() => {
      if (fake.received.some((f) => f.op === 1 && f.d === 2)) {
        clearInterval(t);
        resolve();
      }
    }, 10);
  });
  assert.equal(fake.resumes, 0, 'acknowledged heartbeats keep the connection');
});

test('a dropped gateway connection resumes and replays what was missed, without duplicates', async () => {
  const { fake, sb } = await setup();
  await fake.waitReady();
  fake.message({ channel_id: '77', author: alice, content: 'before' });
  await inbound(sb, 1);
  fake.drop();
  fake.message({ channel_id: '77', author: alice, content: 'while down 1' });
  fake.message({ channel_id: '77', author: alice, content: 'while down 2' });
  await fake.waitReady(2);
  fake.message({ channel_id: '77', author: alice, content: 'after' });
  await inbound(sb, 4);
  assert.deepEqual(texts(sb), ['before', 'while down 1', 'while down 2', 'after']);
  assert.equal(fake.identifies, 1);
  assert.equal(fake.resumes, 1);
  const resume = fake.received.find((f) => f.op === 6);
  assert.equal(resume?.d.seq, 2, 'resumes from the last processed sequence');
});

test('RECONNECT (op 7) makes the client resume on a new connection', async () => {
  const { fake, sb } = await setup();
  await fake.waitReady();
  fake.requestReconnect();
  await fake.waitReady(2);
  fake.message({ channel_id: '77', author: alice, content: 'after reconnect' });
  await inbound(sb, 1);
  assert.deepEqual([fake.identifies, fake.resumes], [1, 1]);
});

test('a non-resumable INVALID_SESSION (op 9) leads to a fresh IDENTIFY', async () => {
  const { fake, sb } = await setup();
  await fake.waitReady();
  fake.invalidate(false);
  await fake.waitReady(2);
  assert.deepEqual([fake.identifies, fake.resumes], [2, 0]);
  fake.message({ channel_id: '77', author: alice, content: 'fresh session' });
  assert.equal((await inbound(sb, 1))[0].text, 'fresh session');
});

test('a zombie connection (heartbeats not acknowledged) is dropped and resumed', async () => {
  const { fake } = await setup({ heartbeatMs: 40 });
  await fake.waitReady();
  fake.withholdAcks(true);
  await fake.waitReady(2);
  fake.withholdAcks(false);
  assert.equal(fake.identifies, 1);
  assert.ok(fake.resumes >= 1);
});

test('a restarted plugin resumes its persisted session: messages sent while it was down arrive once', async () => {
  const kv = new Map<string, unknown>();
  const fake = await startFakeDiscord();
  cleanups.push(() => fake.close());
  const first = await setup({ kv, fake });
  await fake.waitReady();
  fake.message({ channel_id: '77', author: alice, content: 'one' });
  await inbound(first.sb, 1);
  await first.plugin.stop();
  first.sb.close();
  fake.message({ channel_id: '77', author: alice, content: 'two (while restarting)' });
  const second = await setup({ kv, fake });
  await fake.waitReady(2);
  fake.message({ channel_id: '77', author: alice, content: 'three' });
  await inbound(second.sb, 2);
  assert.deepEqual(texts(second.sb), ['two (while restarting)', 'three']);
  assert.deepEqual([fake.identifies, fake.resumes], [1, 1]);
});

test('send posts to the same channel as a reply, with a nonce; a redelivery is not posted twice', async () => {
  const { fake, plugin } = await setup();
  const a = await plugin.send({ channel: 'discord', chatId: '88', text: 'hi', replyTo: '4999', idempotencyKey: 'k1' });
  const b = await plugin.send({ channel: 'discord', chatId: '88', text: 'hi', replyTo: '4999', idempotencyKey: 'k1' });
  assert.equal(fake.posted.length, 1);
  assert.equal(a.platformMessageId, b.platformMessageId);
  const [p] = fake.posted;
  assert.equal(p.channelId, '88');
  assert.equal(p.body.content, 'hi');
  assert.deepEqual(p.body.message_reference, { message_id: '4999', fail_if_not_exists: false });
  assert.ok(p.body.enforce_nonce && p.body.nonce.length <= 25);
});

test('send surfaces 429 as retryable with retry_after in ms, 5xx as retryable, 400 as final', async () => {
  const { fake, plugin } = await setup();
  fake.failNextPost(429, 1.5);
  await assert.rejects(plugin.send({ channel: 'discord', chatId: '88', text: 'x', idempotencyKey: 'a' }), { retryable: true, retryAfterMs: 1500 });
  fake.failNextPost(502);
  await assert.rejects(plugin.send({ channel: 'discord', chatId: '88', text: 'x', idempotencyKey: 'b' }), { retryable: true });
  await assert.rejects(plugin.send({ channel: 'discord', chatId: '88', text: 'x'.repeat(2001), idempotencyKey: 'c' }), { retryable: false, status: 400 });
});

test('a rejected token (close 4004) stops reconnecting and says why', async () => {
  const { sb } = await setup({ token: 'wrong' });
  await new Promise<void>((resolve) => {
    const t = setInterval(() => {
      if (sb.logs.some((l) => l.level === 'error' && /not reconnecting/.test(l.msg))) {
        clearInterval(t);
        resolve();
      }
    }, 10);
  });
  assert.equal(sb.logs.find((l) => /not reconnecting/.test(l.msg))?.fields?.code, 4004);
});
