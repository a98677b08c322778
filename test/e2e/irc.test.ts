import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { haveNgircd, startNgircd, connectHuman, type IrcHuman, type IrcLine } from '../helpers/ngircd.ts';
import { startChannelGateway, pairingCode } from '../helpers/channel-gateway.ts';
import { until } from '../helpers/wait.ts';
import { TEST_SECRETS } from '../helpers/test-secrets.ts';

// IRC through the whole gateway against a real ngircd: the plugin in its isolate
// registers with PASS over the connect capability; DMs go through pairing, the
// channel through mention gating; an operator KILLs the bot mid-conversation and
// it comes back and keeps answering, exactly once.

const skip = haveNgircd ? false : 'ngircd is not installed (listed in .ci/apt-packages)';
const NICK = 'e2ebot';
const CHAN = '#carapace';

async function ircGateway(t: TestContext, channel: Record<string, unknown> = {}) {
  const server = await startNgircd({ password: TEST_SECRETS.ircPassword });
  t.after(() => server.stop());
  const alice = await connectHuman(server.port, 'alice', server.password);
  t.after(() => alice.close());
  alice.send(`JOIN ${CHAN}`);
  const cg = await startChannelGateway(t, {
    name: 'irc',
    channels: {
      irc: { enabled: true, dmPolicy: 'pairing', host: '127.0.0.1', port: server.port, nick: NICK, password: true, channels: [CHAN], retryBaseMs: 50, floodBurst: 20, floodIntervalMs: 100, ...channel },
    },
    secrets: { IRC_PASSWORD: server.password },
  });
  await alice.waitFor(joined(), 20_000);
  return { server, alice, ...cg };
}

const joined = () => (l: IrcLine) => l.command === 'JOIN' && l.prefix.startsWith(`${NICK}!`);
const fromBot = (h: IrcHuman, target: string) => h.lines.filter((l) => l.command === 'PRIVMSG' && l.prefix.startsWith(`${NICK}!`) && l.params[0] === target).map((l) => l.params[1]);

test('irc DM: an unknown nick gets one pairing code, nothing reaches the agent before approval, then the agent answers — also after an operator KILLs the bot mid-reply, exactly once', { skip }, async (t) => {
  const { server, alice, gw, llm, agentSaw, approve } = await ircGateway(t);
  const bob = await connectHuman(server.port, 'bob', server.password);
  t.after(() => bob.close());

  alice.send(`PRIVMSG ${NICK} :hello?`);
  const code = pairingCode((await alice.waitFor((l) => l.command === 'PRIVMSG' && /pairing code/.test(l.params[1] ?? ''))).params[1]);
  alice.send(`PRIVMSG ${NICK} :hello again?`);
  bob.send(`PRIVMSG ${NICK} :me too`); // the barrier: the router handles messages in order
  await bob.waitFor((l) => l.command === 'PRIVMSG' && /pairing code/.test(l.params[1] ?? ''));
  assert.equal(fromBot(alice, 'alice').filter((s) => /pairing code/.test(s)).length, 1, 'the code is sent once, not on every message');
  assert.equal(llm.requests.length, 0, 'nothing reached the agent before approval');

  await approve('irc', code);
  await alice.waitFor((l) => l.command === 'PRIVMSG' && /paired/.test(l.params[1] ?? ''));
  alice.send(`PRIVMSG ${NICK} :can you hear me?`);
  await alice.waitFor((l) => l.command === 'PRIVMSG' && l.params[1] === 'echo: can you hear me?');
  assert.deepEqual(agentSaw(), ['can you hear me?'], 'messages refused before pairing never reach the agent');

  // An operator kills the bot while the agent is answering: the reply must still arrive once.
  alice.send(`OPER ${server.oper.name} ${server.oper.password}`);
  await alice.waitFor((l) => l.command === '381');
  const rejoins = alice.lines.length;
  llm.push(() => {
    alice.send(`KILL ${NICK} :testing reconnects`);
    return { text: 'echo: while being killed' };
  });
  alice.send(`PRIVMSG ${NICK} :answer while being killed`);
  await alice.waitFor(joined(), 20_000, rejoins);
  await alice.waitFor((l) => l.command === 'PRIVMSG' && l.params[1] === 'echo: while being killed', 20_000);
  alice.send(`PRIVMSG ${NICK} :and after the reconnect`);
  await alice.waitFor((l) => l.command === 'PRIVMSG' && l.params[1] === 'echo: and after the reconnect');

  const replies = fromBot(alice, 'alice').filter((s) => s.startsWith('echo: '));
  assert.deepEqual(replies, ['echo: can you hear me?', 'echo: while being killed', 'echo: and after the reconnect'], 'every message answered exactly once');
  assert.doesNotMatch(gw.output(), new RegExp(server.password), 'the server password is in no log line');
  assert.equal((await gw.stop()).code, 0);
});

test('irc channel: an unmentioned line is ignored, a line addressed to the bot in an allowed channel is answered in the channel', { skip }, async (t) => {
  const { alice, gw, agentSaw } = await ircGateway(t, { groupPolicy: 'allowlist', groups: { [CHAN]: {} }, requireMention: true });
  alice.send(`PRIVMSG ${CHAN} :just chatting among humans`);
  alice.send(`PRIVMSG ${CHAN} :${NICK}: what is up?`);
  // the sender does not hear their own channel lines; the bot's answer comes back on the channel
  await alice.waitFor((l) => l.command === 'PRIVMSG' && l.params[0] === CHAN && l.params[1] === 'echo: what is up?');
  assert.deepEqual(fromBot(alice, CHAN), ['echo: what is up?'], 'only the addressed line got an answer');
  assert.deepEqual(agentSaw(), ['what is up?']);
  assert.equal((await gw.stop()).code, 0);
});
