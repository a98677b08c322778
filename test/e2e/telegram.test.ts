import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { tempHome } from '../helpers/home.ts';
import { spawnGateway } from '../helpers/gateway.ts';
import { runCli } from '../helpers/cli.ts';
import { startFakeAnthropic } from '../helpers/fake-anthropic.ts';
import { startFakeTelegram } from '../helpers/fake-telegram.ts';
import { TEST_SECRETS } from '../helpers/test-secrets.ts';
import { until } from '../helpers/wait.ts';

// A chat channel through the whole gateway: the telegram plugin in its isolate
// long-polls a loopback Bot API fake; the router asks an unknown sender to pair;
// after `carapace pairing approve` the next message reaches the agent (a loopback
// Anthropic fake behind the sandboxed provider) and the reply goes back to the
// same chat through the durable delivery queue.

const alice = { id: 42, is_bot: false, first_name: 'Alice', username: 'alice' };
const dm = { id: 42, type: 'private', first_name: 'Alice' };

test('an unknown Telegram sender gets a pairing code once; after approval the agent answers in the same chat', async (t) => {
  const home = tempHome('telegram');
  t.after(home.cleanup);
  const llm = await startFakeAnthropic();
  t.after(() => llm.close());
  const tg = await startFakeTelegram(TEST_SECRETS.telegramToken);
  t.after(() => tg.close());
  mkdirSync(home.dir, { recursive: true, mode: 0o700 });
  writeFileSync(
    home.paths.config,
    JSON.stringify({
      providers: { anthropic: { apiKey: { secret: 'ANTHROPIC_API_KEY' }, baseUrl: llm.url } },
      agents: { defaults: { model: 'anthropic/claude-sonnet-4-6' } },
      channels: { telegram: { enabled: true, dmPolicy: 'pairing', apiBaseUrl: tg.url, pollTimeoutSec: 1 } },
    }),
  );
  for (const [name, value] of [['ANTHROPIC_API_KEY', TEST_SECRETS.telegramAnthropicKey], ['TELEGRAM_BOT_TOKEN', tg.token]]) {
    const r = await runCli(['secrets', 'set', name], { home: home.dir, input: value });
    assert.equal(r.code, 0, r.stderr);
  }
  const gw = await spawnGateway(home.dir, { env: { ANTHROPIC_API_KEY: '', OPENAI_API_KEY: '' } });
  t.after(() => gw.stop('SIGKILL'));

  tg.pushMessage({ from: alice, chat: dm, text: 'hello?' });
  const codeMsg = await until('the pairing code', () => tg.sent().find((c) => c.method === 'sendMessage' && String(c.params.chat_id) === '42'));
  const code = /\b([0-9A-Z]{4}-?[0-9A-Z]{4})\b/.exec(String(codeMsg.params.text))?.[1];
  assert.ok(code, `a code in: ${codeMsg.params.text}`);
  tg.pushMessage({ from: alice, chat: dm, text: 'hello again?' });
  await delay(1500);
  assert.equal(tg.sent().filter((c) => c.method === 'sendMessage').length, 1, 'the code is sent once, not on every message');
  assert.equal(llm.requests.length, 0, 'nothing reached the agent before approval');

  const list = await runCli(['pairing', 'list', '--json'], { home: home.dir });
  assert.match(list.stdout, new RegExp(code!.replace('-', '-?')));
  const approve = await runCli(['pairing', 'approve', 'telegram', code!], { home: home.dir });
  assert.equal(approve.code, 0, approve.stderr);

  llm.push({ text: 'Hello Alice, how can I help?' });
  tg.pushMessage({ from: alice, chat: dm, text: 'now can you hear me?' });
  const reply = await until('the agent reply', () => tg.sent().find((c) => c.method === 'sendMessage' && /Hello Alice/.test(String(c.params.text))));
  assert.equal(String(reply.params.chat_id), '42', 'the reply goes back to the same chat');
  assert.match(JSON.stringify(llm.requests[0].body.messages), /now can you hear me\?/);
  assert.doesNotMatch(JSON.stringify(llm.requests[0].body.messages), /hello again\?/, 'messages refused before pairing never reach the agent');
  assert.doesNotMatch(gw.output(), new RegExp(tg.token), 'the bot token is in no log line');
  assert.equal((await gw.stop()).code, 0);
});
