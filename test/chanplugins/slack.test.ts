import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { createSandbox, type Sandbox } from '../helpers/plugin-sandbox-stub.ts';
import { startFakeSlack } from '../helpers/fake-slack.ts';
import { assertInbound } from '../helpers/inbound-shape.ts';
import type * as Slack from '../../plugins/channels/slack/index.js';
import { until } from '../helpers/wait.ts';

const ENTRY = fileURLToPath(new URL('../../plugins/channels/slack/index.js', import.meta.url));
type Plugin = typeof Slack;

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup() {
  const fake = await startFakeSlack();
  cleanups.push(() => fake.close());
  const sb = createSandbox({ config: { apiBaseUrl: fake.api, retryBaseMs: 20 }, secrets: { SLACK_APP_TOKEN: fake.appToken, SLACK_BOT_TOKEN: fake.botToken } });
  const plugin = sb.load<Plugin>(ENTRY);
  cleanups.push(async () => {
    await plugin.stop();
    sb.close();
  });
  await plugin.start({ config: sb.carapace.config });
  await fake.waitConnections(1);
  return { fake, sb, plugin };
}

let ts = 1_700_000_100;
const nextTs = () => `${ts++}.000200`;
const texts = (sb: Sandbox) => sb.published.map((p) => (p.payload as { text: string }).text);
async function inbound(sb: Sandbox, n: number) {
  return (await sb.waitForPublished('channel.inbound', n)).map(assertInbound);
}

test('a direct message becomes a valid InboundMessage and its envelope is acknowledged', async () => {
  const { fake, sb } = await setup();
  const t = nextTs();
  const env = fake.event({ type: 'message', channel: 'D1', channel_type: 'im', user: 'U42', text: 'hello &amp; welcome', ts: t, team: 'T1' });
  const [m] = await inbound(sb, 1);
  assert.deepEqual(m, { channel: 'slack', account: 'T1', chatId: 'D1', chatType: 'direct', sender: { id: 'U42' }, text: 'hello & welcome', platformMessageId: `D1:${t}`, ts: Math.round(Number(t) * 1000) });
  await until('the envelope ack', () => fake.acked.includes(env.envelope_id));
});

test('channel mentions (<@BOT> or app_mention) set mentioned, are stripped, and the message/app_mention pair publishes once', async () => {
  const { fake, sb } = await setup();
  const t1 = nextTs();
  fake.event({ type: 'message', channel: 'C1', channel_type: 'channel', user: 'U42', text: '<@UBOT> summarise this', ts: t1 });
  fake.event({ type: 'app_mention', channel: 'C1', user: 'U42', text: '<@UBOT> summarise this', ts: t1 });
  fake.event({ type: 'message', channel: 'C1', channel_type: 'channel', user: 'U42', text: 'just people talking', ts: nextTs() });
  fake.event({ type: 'message', channel: 'C1', channel_type: 'channel', bot_id: 'B1', user: 'UBOT', text: 'my own reply', ts: nextTs() });
  const ms = await inbound(sb, 2);
  await until('4 acks', () => fake.acked.length === 4);
  assert.equal(sb.published.length, 2);
  assert.deepEqual(ms.map((m) => [m.chatType, m.text, m.mentioned]), [
    ['group', 'summarise this', true],
    ['group', 'just people talking', false],
  ]);
});

test('a reply inside a thread carries the thread ts', async () => {
  const { fake, sb } = await setup();
  fake.event({ type: 'message', channel: 'C1', channel_type: 'channel', user: 'U42', text: 'in thread', ts: nextTs(), thread_ts: '1699999999.000100' });
  const [m] = await inbound(sb, 1);
  assert.equal(m.chatType, 'thread');
  assert.equal(m.threadId, '1699999999.000100');
});

test('a dropped socket reconnects; envelopes missed or left unacknowledged are delivered exactly once', async () => {
  const { fake, sb } = await setup();
  fake.event({ type: 'message', channel: 'D1', channel_type: 'im', user: 'U42', text: 'one', ts: nextTs() });
  await inbound(sb, 1);
  fake.loseAcks(true);
  fake.event({ type: 'message', channel: 'D1', channel_type: 'im', user: 'U42', text: 'two (ack lost)', ts: nextTs() });
  await inbound(sb, 2);
  fake.drop();
  fake.loseAcks(false);
  fake.event({ type: 'message', channel: 'D1', channel_type: 'im', user: 'U42', text: 'three (while down)', ts: nextTs() });
  await fake.waitConnections(2);
  fake.event({ type: 'message', channel: 'D1', channel_type: 'im', user: 'U42', text: 'four', ts: nextTs() });
  await inbound(sb, 4);
  await until('4 acks', () => fake.acked.length >= 4);
  assert.deepEqual(texts(sb), ['one', 'two (ack lost)', 'three (while down)', 'four']);
  assert.equal(fake.opens, 2);
});

test('a disconnect message opens a new connection and keeps delivering', async () => {
  const { fake, sb } = await setup();
  fake.disconnect('refresh_requested');
  await fake.waitConnections(2);
  fake.event({ type: 'message', channel: 'D1', channel_type: 'im', user: 'U42', text: 'after refresh', ts: nextTs() });
  await inbound(sb, 1);
  assert.deepEqual(texts(sb), ['after refresh']);
});

test('send posts to the same channel and thread; a redelivery with the same key is not posted twice', async () => {
  const { fake, plugin } = await setup();
  const a = await plugin.send({ channel: 'slack', chatId: 'C1', threadId: '1699999999.000100', text: 'threaded answer', idempotencyKey: 'k' });
  await plugin.send({ channel: 'slack', chatId: 'C1', threadId: '1699999999.000100', text: 'threaded answer', idempotencyKey: 'k' });
  await plugin.send({ channel: 'slack', chatId: 'C1', replyTo: 'C1:1699999998.000100', text: 'reply starts a thread', idempotencyKey: 'k2' });
  assert.deepEqual(fake.posted.map((p) => [p.channel, p.thread_ts, p.text]), [
    ['C1', '1699999999.000100', 'threaded answer'],
    ['C1', '1699999998.000100', 'reply starts a thread'],
  ]);
  assert.match(a.platformMessageId ?? '', /^C1:\d+\.\d+$/);
});

test('send surfaces 429 Retry-After as retryable ms, 5xx as retryable, channel_not_found as final', async () => {
  const { fake, plugin } = await setup();
  fake.failNextPost(429, 3);
  await assert.rejects(plugin.send({ channel: 'slack', chatId: 'C1', text: 'x', idempotencyKey: 'a' }), { retryable: true, retryAfterMs: 3000 });
  fake.failNextPost(503);
  await assert.rejects(plugin.send({ channel: 'slack', chatId: 'C1', text: 'x', idempotencyKey: 'b' }), { retryable: true });
  await assert.rejects(plugin.send({ channel: 'slack', chatId: '', text: 'x', idempotencyKey: 'c' }), { retryable: false, message: /channel_not_found/ });
});
