import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { createSandbox, type Sandbox } from '../helpers/plugin-sandbox-stub.ts';
import { haveNgircd, startNgircd, connectHuman, type Ngircd, type IrcHuman } from '../helpers/ngircd.ts';
import { assertInbound } from '../helpers/inbound-shape.ts';
import { splitMessage, utf8Len, parseLine, mentionOf } from '../../plugins/channels/irc/index.js';
import type * as Irc from '../../plugins/channels/irc/index.js';

const ENTRY = fileURLToPath(new URL('../../plugins/channels/irc/index.js', import.meta.url));
type Plugin = typeof Irc;
const skip = haveNgircd ? false : 'ngircd is not installed (apt-get install ngircd; listed in .ci/apt-packages)';

let server: Ngircd;
before(async () => {
  if (haveNgircd) server = await startNgircd();
});
after(async () => {
  await server?.stop();
});
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let n = 0;
async function human(nick: string): Promise<IrcHuman> {
  const h = await connectHuman(server.port, `${nick}${++n}`, server.password);
  cleanups.push(() => h.close());
  return h;
}

async function bot(config: Record<string, unknown> = {}) {
  const sb = createSandbox({
    config: { host: '127.0.0.1', port: server.port, nick: `carabot${++n}`, password: true, channels: ['#carapace'], retryBaseMs: 50, floodBurst: 20, floodIntervalMs: 100, ...config },
    secrets: { IRC_PASSWORD: server.password },
  });
  const plugin = sb.load<Plugin>(ENTRY);
  cleanups.push(async () => {
    await plugin.stop();
    sb.close();
  });
  await plugin.start({ config: sb.carapace.config });
  await waitLog(sb, (l) => l.msg === 'irc: registered');
  return { sb, plugin, nick: String(sb.carapace.config.nick) };
}

async function waitLog(sb: Sandbox, pred: (l: Sandbox['logs'][number]) => boolean, from = 0) {
  for (let i = 0; i < 1000; i++) {
    if (sb.logs.slice(from).some(pred)) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`no such log line; have ${JSON.stringify(sb.logs)}`);
}

async function inbound(sb: Sandbox, count: number) {
  return (await sb.waitForPublished('channel.inbound', count)).map(assertInbound);
}
const joined = (h: IrcHuman, nick: string, from = 0) => h.waitFor((l) => l.command === 'JOIN' && l.prefix.startsWith(nick + '!'), 10_000, from);

test('splitting keeps every IRC line within 512 bytes without breaking characters', () => {
  const text = ('héllo wörld 🦀 ' + 'x'.repeat(30) + ' ').repeat(40) + 'y'.repeat(700);
  const parts = splitMessage(text, 400);
  assert.ok(parts.length > 3);
  for (const p of parts) {
    assert.ok(utf8Len(p) <= 400, `part of ${utf8Len(p)} bytes`);
    assert.ok(!/\uFFFD/.test(p) && !/[\uD800-\uDBFF]$/.test(p), 'no split surrogate');
    assert.equal(utf8Len(p), Buffer.byteLength(p));
  }
  assert.equal(parts.join('').replace(/\s+/g, ''), text.replace(/\s+/g, ''));
  assert.deepEqual(splitMessage('one\ntwo\r\n\nthree', 400), ['one', 'two', 'three']);
});

test('line parsing handles tags, prefixes and trailing parameters', () => {
  assert.deepEqual(parseLine('@msgid=abc;time=x :nick!u@h PRIVMSG #chan :hello : there'), {
    tags: { msgid: 'abc', time: 'x' },
    prefix: 'nick!u@h',
    command: 'PRIVMSG',
    params: ['#chan', 'hello : there'],
  });
  assert.deepEqual(mentionOf('CaraBot: do it', 'carabot'), { text: 'do it', mentioned: true });
  assert.deepEqual(mentionOf('ask carabot later', 'carabot'), { text: 'ask carabot later', mentioned: true });
  assert.deepEqual(mentionOf('carabots are fun', 'carabot'), { text: 'carabots are fun', mentioned: false });
});

test('registers with the server password, joins its channel and receives a private message as an InboundMessage', { skip }, async () => {
  const alice = await human('alice');
  alice.send('JOIN #carapace');
  await joined(alice, alice.nick);
  const { sb, nick } = await bot();
  await joined(alice, nick);
  alice.send(`PRIVMSG ${nick} :hello bot`);
  const [m] = await inbound(sb, 1);
  assert.equal(m.channel, 'irc');
  assert.equal(m.chatType, 'direct');
  assert.equal(m.chatId, alice.nick);
  assert.equal(m.sender.id, alice.nick);
  assert.equal(m.text, 'hello bot');
});

test('send replies to the same private chat and channel', { skip }, async () => {
  const alice = await human('alice');
  alice.send('JOIN #carapace');
  await joined(alice, alice.nick);
  const { plugin, nick } = await bot();
  await joined(alice, nick);
  await plugin.send({ channel: 'irc', chatId: alice.nick, text: 'private answer', idempotencyKey: 'a' });
  await plugin.send({ channel: 'irc', chatId: '#carapace', text: 'channel answer', idempotencyKey: 'b' });
  const dm = await alice.waitFor((l) => l.command === 'PRIVMSG' && l.params[0] === alice.nick);
  assert.ok(dm.prefix.startsWith(nick + '!'));
  assert.equal(dm.params[1], 'private answer');
  const ch = await alice.waitFor((l) => l.command === 'PRIVMSG' && l.params[0] === '#carapace');
  assert.equal(ch.params[1], 'channel answer');
});

test('channel lines mark mentions by nick: prefix or nick in the text, and not otherwise', { skip }, async () => {
  const alice = await human('alice');
  alice.send('JOIN #carapace');
  await joined(alice, alice.nick);
  const { sb, nick } = await bot();
  await joined(alice, nick);
  alice.send(`PRIVMSG #carapace :${nick}: what is the time`);
  alice.send('PRIVMSG #carapace :humans talking');
  alice.send(`PRIVMSG #carapace :I think ${nick} knows`);
  const ms = await inbound(sb, 3);
  assert.deepEqual(ms.map((m) => [m.chatType, m.chatId, m.text, m.mentioned]), [
    ['group', '#carapace', 'what is the time', true],
    ['group', '#carapace', 'humans talking', false],
    ['group', '#carapace', `I think ${nick} knows`, true],
  ]);
});

test('a nick collision (433) makes the bot register under its alternate nick', { skip }, async () => {
  const squatter = await human('taken');
  const { sb } = await bot({ nick: squatter.nick, altNicks: [`${squatter.nick}alt`] });
  squatter.send(`PRIVMSG ${squatter.nick}alt :are you there`);
  const [m] = await inbound(sb, 1);
  assert.equal(m.text, 'are you there');
  assert.ok(sb.logs.some((l) => l.msg === 'irc: registered' && l.fields?.nick === `${squatter.nick}alt`));
});

test('long replies are split into lines the server relays whole', { skip }, async () => {
  const alice = await human('alice');
  const { plugin, nick } = await bot();
  const text = ('naïve café 🦀 ' + 'word '.repeat(20)).repeat(12).trim();
  await plugin.send({ channel: 'irc', chatId: alice.nick, text, idempotencyKey: 'long' });
  const from = alice.lines.length;
  await plugin.send({ channel: 'irc', chatId: alice.nick, text: 'END', idempotencyKey: 'end' });
  await alice.waitFor((l) => l.command === 'PRIVMSG' && l.params[1] === 'END', 10_000, from);
  const got = alice.lines.filter((l) => l.command === 'PRIVMSG' && l.prefix.startsWith(nick + '!') && l.params[1] !== 'END');
  assert.ok(got.length >= 3, `${got.length} lines`);
  for (const l of got) assert.ok(Buffer.byteLength(l.raw) + 2 <= 512, `${Buffer.byteLength(l.raw)} bytes`);
  assert.equal(got.map((l) => l.params[1]).join(' '), text);
});

test('flood control holds lines beyond the burst until tokens refill, and all arrive in order', { skip }, async () => {
  const alice = await human('alice');
  const { sb, plugin } = await bot({ floodBurst: 2, floodIntervalMs: 100 });
  await plugin.send({ channel: 'irc', chatId: alice.nick, text: 'l1\nl2\nl3\nl4\nl5', idempotencyKey: 'flood' });
  await alice.waitFor((l) => l.command === 'PRIVMSG' && l.params[1] === 'l5');
  assert.deepEqual(alice.lines.filter((l) => l.command === 'PRIVMSG').map((l) => l.params[1]), ['l1', 'l2', 'l3', 'l4', 'l5']);
  assert.ok(sb.sleeps.length >= 3, `waited ${sb.sleeps.length} times for tokens`);
});

test('a killed connection reconnects and rejoins; sends while down are retryable; nothing after is lost or doubled', { skip }, async () => {
  const oper = await human('oper');
  oper.send(`OPER ${server.oper.name} ${server.oper.password}`);
  await oper.waitFor((l) => l.command === '381');
  oper.send('JOIN #carapace');
  await joined(oper, oper.nick);
  const { sb, plugin, nick } = await bot({ retryBaseMs: 300 });
  await joined(oper, nick);
  oper.send(`PRIVMSG ${nick} :before`);
  await inbound(sb, 1);
  const from = oper.lines.length;
  oper.send(`KILL ${nick} :testing reconnect`);
  await oper.waitFor((l) => l.command === 'QUIT' && l.prefix.startsWith(nick + '!'), 10_000, from);
  await waitLog(sb, (l) => l.msg === 'irc: connection lost; reconnecting');
  await assert.rejects(plugin.send({ channel: 'irc', chatId: oper.nick, text: 'while down', idempotencyKey: 'down' }), { retryable: true, retryAfterMs: 5000 });
  await joined(oper, nick, from);
  oper.send(`PRIVMSG ${nick} :after`);
  await inbound(sb, 2);
  await plugin.send({ channel: 'irc', chatId: oper.nick, text: 'while down', idempotencyKey: 'down' });
  await oper.waitFor((l) => l.command === 'PRIVMSG' && l.params[1] === 'while down', 10_000, from);
  assert.deepEqual(sb.published.map((p) => (p.payload as { text: string }).text), ['before', 'after']);
});

test('a send is confirmed by the server (PING after the lines, PONG back): if the link dies before the server answers, the send fails as retryable instead of being lost', async () => {
  const { createServer } = await import('node:net');
  // A server that registers the bot and then dies on the first PRIVMSG without reading it.
  const conns = new Set<import('node:net').Socket>();
  const srv = createServer((c) => {
    conns.add(c);
    c.setEncoding('utf8');
    let buf = '';
    let welcomed = false;
    c.on('data', (d) => {
      buf += d;
      if (/^USER /m.test(buf) && !welcomed) {
        welcomed = true;
        c.write(':irc.test 001 confirmbot :Welcome\r\n');
      }
      if (/^PRIVMSG /m.test(buf)) c.destroy();
    });
    c.on('error', () => {});
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanups.push(() => {
    for (const c of conns) c.destroy();
    return new Promise<void>((r) => srv.close(() => r()));
  });
  const sb = createSandbox({ config: { host: '127.0.0.1', port: (srv.address() as { port: number }).port, nick: 'confirmbot', retryBaseMs: 5000 } });
  const plugin = sb.load<Plugin>(ENTRY);
  cleanups.push(async () => {
    await plugin.stop();
    sb.close();
  });
  await plugin.start({ config: sb.carapace.config });
  await waitLog(sb, (l) => l.msg === 'irc: registered');
  await assert.rejects(plugin.send({ channel: 'irc', chatId: 'alice', text: 'into the void', idempotencyKey: 'void' }), { retryable: true });
});
