// The bundled channel plugins running for real: signed manifests, the real plugin
// host, a real isolate, the real broker, config-derived grants to loopback fakes
// (or a real ngircd), secrets substituted by the kernel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startChannelHost } from '../helpers/channel-host.ts';
import { startFakeTelegram } from '../helpers/fake-telegram.ts';
import { startFakeDiscord } from '../helpers/fake-discord.ts';
import { haveNgircd, startNgircd, connectHuman } from '../helpers/ngircd.ts';
import { assertInbound } from '../helpers/inbound-shape.ts';

test('telegram in the real host: a getUpdates message reaches channel.inbound on the real broker and channelSend reaches the Bot API', async (t) => {
  const fake = await startFakeTelegram();
  t.after(() => fake.close());
  const ch = await startChannelHost(t, {
    channels: { telegram: { enabled: true, dmPolicy: 'pairing', apiBaseUrl: fake.url, pollTimeoutSec: 1, retryBaseMs: 50 } },
    secrets: { TELEGRAM_BOT_TOKEN: fake.token },
  });
  fake.pushMessage({ from: { id: 42, is_bot: false, first_name: 'Alice', username: 'alice' }, chat: { id: 42, type: 'private', first_name: 'Alice' }, text: 'hello through the kernel' });
  const [msg] = await ch.waitInbound(1);
  assert.equal(msg.from, 'plugin:telegram');
  const m = assertInbound(msg.payload);
  assert.deepEqual({ channel: m.channel, chatId: m.chatId, chatType: m.chatType, text: m.text }, { channel: 'telegram', chatId: '42', chatType: 'direct', text: 'hello through the kernel' });

  const r = await ch.host.channelSend('telegram', { channel: 'telegram', chatId: '42', text: 'hello back', idempotencyKey: 'k-1' });
  assert.ok(r.platformMessageId);
  const sent = fake.sent();
  assert.equal(sent.length, 1);
  assert.equal(sent[0].params.text, 'hello back');
  assert.equal(String(sent[0].params.chat_id), '42');

  const derived = ch.audit.list({ action: 'plugin.grant.derived' }).filter((a) => a.target === 'telegram');
  assert.equal(derived.length, 1);
  const port = new URL(fake.url).port;
  assert.deepEqual((derived[0].data as { permissions: string[] }).permissions.sort(), [`net:127.0.0.1:${port}`, 'secret:TELEGRAM_BOT_TOKEN@127.0.0.1', 'secret:TELEGRAM_WEBHOOK_SECRET@127.0.0.1']);
  assert.ok(!JSON.stringify(ch.logs).includes(fake.token), 'the token is in no log line');
});

test('discord in the real host: IDENTIFY over the websocket capability, a message on the broker, RESUME after a dropped socket and after a plugin restart', async (t) => {
  const fake = await startFakeDiscord();
  t.after(() => fake.close());
  const ch = await startChannelHost(t, {
    channels: { discord: { enabled: true, apiBaseUrl: fake.api, retryBaseMs: 20, invalidSessionDelayMs: 20 } },
    secrets: { DISCORD_BOT_TOKEN: fake.token },
  });
  await fake.waitReady(1, 15_000);
  assert.equal(fake.received.find((f) => f.op === 2)?.d.token, fake.token, 'IDENTIFY carried the substituted token');
  const alice = { id: '42', username: 'alice', global_name: 'Alice' };
  fake.message({ channel_id: '77', author: alice, content: 'first' });
  const [first] = await ch.waitInbound(1);
  assert.equal(assertInbound(first.payload).text, 'first');

  fake.drop();
  fake.message({ channel_id: '77', author: alice, content: 'while down' });
  await fake.waitReady(2, 15_000);
  assert.equal(fake.resumes, 1);
  await ch.waitInbound(2);
  assert.equal(assertInbound(ch.inbound[1].payload).text, 'while down');

  await ch.host.restart('discord');
  await fake.waitReady(3, 15_000);
  assert.equal(fake.resumes, 2, 'the restarted plugin resumed the session kept in kv (closed with 4900)');
  assert.equal(fake.identifies, 1);

  const r = await ch.host.channelSend('discord', { channel: 'discord', chatId: '77', text: 'pong', idempotencyKey: 'k-2' });
  assert.ok(r.platformMessageId);
  assert.equal(fake.posted.at(-1)!.body.content, 'pong');
});

test('irc in the real host: registration with PASS over the connect capability against a real ngircd, both directions', { skip: haveNgircd ? false : 'ngircd is not installed (listed in .ci/apt-packages)' }, async (t) => {
  const server = await startNgircd();
  t.after(() => server.stop());
  const nick = 'hostbot';
  const ch = await startChannelHost(t, {
    channels: { irc: { enabled: true, host: '127.0.0.1', port: server.port, nick, password: true, channels: ['#carapace'], retryBaseMs: 50, floodBurst: 20, floodIntervalMs: 100 } },
    secrets: { IRC_PASSWORD: server.password },
  });
  const human = await connectHuman(server.port, 'alice', server.password);
  t.after(() => human.close());
  // Wait until the bot is on the server, then talk to it.
  await ch.waitFor(() => ch.host.list().find((p) => p.id === 'irc')?.state === 'running', 'irc running');
  for (let i = 0; i < 100; i++) {
    human.send(`PRIVMSG ${nick} :hello bot ${i}`);
    try {
      await ch.waitInbound(1, 200);
      break;
    } catch {
      // not registered yet
    }
  }
  const m = assertInbound(ch.inbound[0].payload);
  assert.equal(m.channel, 'irc');
  assert.equal(m.chatType, 'direct');
  assert.match(m.text, /^hello bot \d+$/);
  const from = human.lines.length;
  await ch.host.channelSend('irc', { channel: 'irc', chatId: m.chatId, text: 'hi alice', idempotencyKey: 'k-3' });
  const line = await human.waitFor((l) => l.command === 'PRIVMSG' && l.params[1] === 'hi alice', 10_000, from);
  assert.ok(line.prefix.startsWith(`${nick}!`));
  assert.ok(!JSON.stringify(ch.logs).includes(server.password));
});
