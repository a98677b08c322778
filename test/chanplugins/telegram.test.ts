import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { createSandbox, type Sandbox } from '../helpers/plugin-sandbox-stub.ts';
import { startFakeTelegram, type FakeTelegram } from '../helpers/fake-telegram.ts';
import { assertInbound } from '../helpers/inbound-shape.ts';
import type * as Telegram from '../../plugins/channels/telegram/index.js';

const ENTRY = fileURLToPath(new URL('../../plugins/channels/telegram/index.js', import.meta.url));
type Plugin = typeof Telegram;

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(config: Record<string, unknown> = {}, kv?: Map<string, unknown>, fakeIn?: FakeTelegram) {
  const fake = fakeIn ?? (await startFakeTelegram());
  if (!fakeIn) cleanups.push(() => fake.close());
  const sb = createSandbox({ config: { apiBaseUrl: fake.url, pollTimeoutSec: 5, retryBaseMs: 50, ...config }, secrets: { TELEGRAM_BOT_TOKEN: fake.token, TELEGRAM_WEBHOOK_SECRET: 'whsec' }, kv });
  const plugin = sb.load<Plugin>(ENTRY);
  cleanups.push(async () => {
    await plugin.stop();
    sb.close();
  });
  await plugin.start({ config: sb.carapace.config });
  return { fake, sb, plugin };
}

const alice = { id: 42, is_bot: false, first_name: 'Alice', last_name: 'Liddell', username: 'alice' };
const dm = { id: 42, type: 'private', first_name: 'Alice' };
const group = { id: -100123, type: 'supergroup', title: 'Tea party' };

async function inbound(sb: Sandbox, n: number) {
  return (await sb.waitForPublished('channel.inbound', n)).map(assertInbound);
}

test('a direct text message becomes a valid InboundMessage on channel.inbound', async () => {
  const { fake, sb } = await setup();
  fake.pushMessage({ from: alice, chat: dm, text: 'hello bot' });
  const [m] = await inbound(sb, 1);
  assert.equal(m.channel, 'telegram');
  assert.equal(m.chatId, '42');
  assert.equal(m.chatType, 'direct');
  assert.deepEqual(m.sender, { id: '42', name: 'Alice Liddell', username: 'alice' });
  assert.equal(m.text, 'hello bot');
  assert.match(m.platformMessageId, /^42:\d+$/);
  assert.equal(m.mentioned, undefined);
});

test('group messages carry mentioned: @botname entity, reply to the bot, and not otherwise', async () => {
  const { fake, sb } = await setup();
  fake.pushMessage({ from: alice, chat: group, text: 'hi @Carapace_Bot how are you', entities: [{ type: 'mention', offset: 3, length: 13 }] });
  fake.pushMessage({ from: alice, chat: group, text: 'just chatting @someone', entities: [{ type: 'mention', offset: 14, length: 8 }] });
  fake.pushMessage({ from: alice, chat: group, text: 'yes please', reply_to_message: { message_id: 77, from: { id: fake.bot.id, is_bot: true, first_name: 'Carapace' }, chat: group } });
  const ms = await inbound(sb, 3);
  assert.deepEqual(ms.map((m) => [m.chatType, m.chatId, m.mentioned]), [['group', '-100123', true], ['group', '-100123', false], ['group', '-100123', true]]);
  assert.equal(ms[2].replyTo, '77');
});

test('forum topic messages are threads carrying the topic id', async () => {
  const { fake, sb } = await setup();
  fake.pushMessage({ from: alice, chat: { ...group, is_forum: true }, text: 'in a topic', is_topic_message: true, message_thread_id: 5 });
  const [m] = await inbound(sb, 1);
  assert.equal(m.chatType, 'thread');
  assert.equal(m.threadId, '5');
});

test('photos and documents arrive as media references with their captions as text', async () => {
  const { fake, sb } = await setup();
  fake.pushMessage({ from: alice, chat: dm, caption: 'look', photo: [{ file_id: 'small', width: 90, height: 90 }, { file_id: 'large', width: 800, height: 800 }] });
  fake.pushMessage({ from: alice, chat: dm, document: { file_id: 'doc1', file_name: 'report.pdf', mime_type: 'application/pdf' } });
  const [photo, doc] = await inbound(sb, 2);
  assert.equal(photo.text, 'look');
  assert.deepEqual(photo.media, [{ kind: 'image', ref: 'large', mime: 'image/jpeg' }]);
  assert.deepEqual(doc.media, [{ kind: 'file', ref: 'doc1', mime: 'application/pdf', name: 'report.pdf' }]);
});

test('a restart resumes from the persisted offset: nothing lost, nothing repeated', async () => {
  const kv = new Map<string, unknown>();
  const fake = await startFakeTelegram();
  cleanups.push(() => fake.close());
  const first = await setup({}, kv, fake);
  const u1 = fake.pushMessage({ from: alice, chat: dm, text: 'one' });
  await inbound(first.sb, 1);
  await fake.waitForPoll(u1.update_id + 1);
  assert.equal(kv.get('offset'), u1.update_id + 1);
  await first.plugin.stop();
  first.sb.close();
  fake.pushMessage({ from: alice, chat: dm, text: 'two (sent while down)' });

  const second = await setup({}, kv, fake);
  fake.pushMessage({ from: alice, chat: dm, text: 'three' });
  const ms = await inbound(second.sb, 2);
  assert.deepEqual(ms.map((m) => m.text), ['two (sent while down)', 'three']);
});

test('a dropped long poll reconnects without losing or duplicating messages', async () => {
  const { fake, sb } = await setup();
  const u1 = fake.pushMessage({ from: alice, chat: dm, text: 'before drop' });
  await inbound(sb, 1);
  await fake.waitForPoll(u1.update_id + 1);
  fake.dropConnections();
  fake.pushMessage({ from: alice, chat: dm, text: 'after drop' });
  const ms = await inbound(sb, 2);
  assert.deepEqual(ms.map((m) => m.text), ['before drop', 'after drop']);
  const u3 = fake.pushMessage({ from: alice, chat: dm, text: 'later' });
  await fake.waitForPoll(u3.update_id + 1);
  assert.deepEqual(sb.published.map((p) => (p.payload as { text: string }).text), ['before drop', 'after drop', 'later']);
});

test('a 429 on getUpdates waits retry_after and then delivers', async () => {
  const { fake, sb } = await setup();
  const u = fake.pushMessage({ from: alice, chat: dm, text: 'first' });
  await inbound(sb, 1);
  await fake.waitForPoll(u.update_id + 1);
  fake.failNext('getUpdates', 429, 1);
  fake.failNext('getUpdates', 502);
  fake.dropConnections();
  fake.pushMessage({ from: alice, chat: dm, text: 'second' });
  const ms = await inbound(sb, 2);
  assert.equal(ms[1].text, 'second');
  assert.ok(sb.logs.some((l) => l.msg.includes('getUpdates failed')));
});

test('send delivers to the same chat and topic as a reply and returns the platform id', async () => {
  const { fake, plugin } = await setup();
  const r = await plugin.send({ channel: 'telegram', chatId: '-100123', threadId: '5', replyTo: '-100123:77', text: 'hello group', idempotencyKey: 'k1' });
  const [call] = fake.sent();
  assert.equal(call.method, 'sendMessage');
  assert.deepEqual(call.params, { chat_id: '-100123', message_thread_id: 5, reply_parameters: { message_id: 77, allow_sending_without_reply: true }, text: 'hello group' });
  assert.match(r.platformMessageId ?? '', /^-100123:\d+$/);
});

test('a redelivered send with the same idempotency key is not sent twice', async () => {
  const { fake, plugin } = await setup();
  const a = await plugin.send({ channel: 'telegram', chatId: '42', text: 'once', idempotencyKey: 'same' });
  const b = await plugin.send({ channel: 'telegram', chatId: '42', text: 'once', idempotencyKey: 'same' });
  assert.equal(fake.sent().length, 1);
  assert.equal(a.platformMessageId, b.platformMessageId);
});

test('send surfaces 429 as retryable with retryAfterMs, 502 as retryable, 400 as final', async () => {
  const { fake, plugin } = await setup();
  fake.failNext('sendMessage', 429, 7);
  await assert.rejects(plugin.send({ channel: 'telegram', chatId: '42', text: 'x', idempotencyKey: 'a' }), { retryable: true, retryAfterMs: 7000 });
  fake.failNext('sendMessage', 502);
  await assert.rejects(plugin.send({ channel: 'telegram', chatId: '42', text: 'x', idempotencyKey: 'b' }), { retryable: true });
  await assert.rejects(plugin.send({ channel: 'telegram', chatId: '42', text: 'x'.repeat(5000), idempotencyKey: 'c' }), { retryable: false, status: 400 });
  await plugin.send({ channel: 'telegram', chatId: '42', text: 'x', idempotencyKey: 'a' });
  assert.equal(fake.sent().filter((c) => c.method === 'sendMessage').length, 4);
});

test('outbound media goes by reference, with the text as caption', async () => {
  const { fake, plugin } = await setup();
  await plugin.send({ channel: 'telegram', chatId: '42', text: 'a cat', media: [{ kind: 'image', ref: 'https://example.com/cat.jpg' }, { kind: 'file', ref: 'doc1' }], idempotencyKey: 'm' });
  assert.deepEqual(fake.sent().map((c) => [c.method, c.params.photo ?? c.params.document, c.params.caption]), [
    ['sendPhoto', 'https://example.com/cat.jpg', 'a cat'],
    ['sendDocument', 'doc1', undefined],
  ]);
});

test('a typing signal on channel.outbound.telegram sends the typing chat action', async () => {
  const { fake, sb } = await setup();
  await sb.deliver('channel.outbound.telegram', { type: 'typing', chatId: '42' });
  assert.deepEqual(fake.calls.filter((c) => c.method === 'sendChatAction').map((c) => c.params), [{ chat_id: '42', action: 'typing' }]);
});

test('webhook mode registers the webhook with the secret token and publishes forwarded updates once', async () => {
  const { fake, sb } = await setup({ mode: 'webhook', webhookUrl: 'https://carapace.example/hooks/telegram' });
  assert.deepEqual(fake.webhook, { url: 'https://carapace.example/hooks/telegram', secret_token: 'whsec' });
  const update = { update_id: 900, message: { message_id: 3, date: 1, from: alice, chat: dm, text: 'via webhook' } };
  await sb.deliver('channel.webhook.telegram', update);
  await sb.deliver('channel.webhook.telegram', update);
  const [m] = await inbound(sb, 1);
  assert.equal(m.text, 'via webhook');
  assert.equal(sb.published.length, 1);
  assert.ok(!fake.calls.some((c) => c.method === 'getUpdates'));
});
