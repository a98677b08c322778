import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from '../helpers/cli.ts';
import { startChannelGateway } from '../helpers/channel-gateway.ts';
import { homePaths } from '../../core/home.ts';
import { startFakeTelegram } from '../helpers/fake-telegram.ts';
import { TEST_SECRETS } from '../helpers/test-secrets.ts';
import { until } from '../helpers/wait.ts';

// The owner lives in Telegram, not in the Control UI: a tool call that needs
// approval is asked in their chat and answered there with /approve.

const owner = { id: 42, is_bot: false, first_name: 'Alice', username: 'alice' };
const ownerDm = { id: 42, type: 'private', first_name: 'Alice' };
const friend = { id: 43, is_bot: false, first_name: 'Bob', username: 'bob' };
const friendDm = { id: 43, type: 'private', first_name: 'Bob' };

test('a tool call that needs approval is asked in the owner\'s Telegram chat; /approve there runs it, the same command from anyone else does not', async (t) => {
  const tg = await startFakeTelegram(TEST_SECRETS.telegramToken);
  t.after(() => tg.close());
  const { home, llm, gw } = await startChannelGateway(t, {
    name: 'chat-approvals',
    channels: { telegram: { enabled: true, dmPolicy: 'allowlist', allowFrom: ['42', '43'], apiBaseUrl: tg.url, pollTimeoutSec: 1 } },
    secrets: { TELEGRAM_BOT_TOKEN: tg.token },
    config: {
      agents: { defaults: { model: 'anthropic/claude-sonnet-4-6', tools: { requireApproval: ['clock_now'] } } },
      approvals: { chat: [{ channel: 'telegram', peer: '42' }] },
    },
  });
  const sentTo = (chat: number) => tg.sent().filter((c) => c.method === 'sendMessage' && String(c.params.chat_id) === String(chat)).map((c) => String(c.params.text));

  // Two sessions talk to the model at once: answer by what each request carries.
  llm.setDefault((req) => {
    const sent = JSON.stringify(req.body?.messages);
    if (sent.includes('tool_result')) return { text: 'It is morning in Tokyo.' };
    if (sent.includes('/approve')) return { text: 'I cannot do that for you.' };
    return { toolCalls: [{ id: 'toolu_1', name: 'clock_now', input: { timezone: 'Asia/Tokyo' } }], stopReason: 'tool_use' };
  });
  tg.pushMessage({ from: owner, chat: ownerDm, text: 'What time is it in Tokyo?' });
  const ask = await until('the approval request in the owner\'s chat', () => sentTo(42).find((m) => /Reply approve apr_/.test(m)));
  assert.match(ask, /agent main wants to run clock_now/);
  assert.match(ask, /Asia\/Tokyo/);
  const id = /approve (apr_[0-9a-f]{12})/.exec(ask)![1];

  // Someone else the bot talks to cannot approve: their "/approve" is an ordinary message to the agent.
  tg.pushMessage({ from: friend, chat: friendDm, text: `/approve ${id}` });
  await until('the friend\'s message answered as a chat', () => sentTo(43).find((m) => /cannot do that/.test(m)));
  const pending = await runCli(['approvals', 'list', '--json'], { home });
  assert.match(pending.stdout, new RegExp(`${id}[^]*pending`), pending.stdout);

  tg.pushMessage({ from: owner, chat: ownerDm, text: `/approve ${id}` });
  await until('the confirmation', () => sentTo(42).find((m) => m === `Approved: clock_now (${id}).`));
  await until('the answer after the tool ran', () => sentTo(42).find((m) => /morning in Tokyo/.test(m)));
  assert.match(JSON.stringify(llm.requests.find((r) => JSON.stringify(r.body.messages).includes('tool_result'))?.body.messages), /Asia\/Tokyo/, 'the tool ran and its result went to the model');
  assert.equal(llm.requests.length, 3, 'the owner\'s turn (two steps) and the friend\'s message; the owner\'s /approve never reached the model');

  const { default: Database } = await import('better-sqlite3');
  const db = new Database(homePaths(home).db, { readonly: true });
  t.after(() => db.close());
  const row = db.prepare("SELECT actor FROM audit WHERE action = 'approval.approved' AND target = ?").get(id) as { actor: string };
  assert.equal(row.actor, 'channel:telegram:42');
  assert.equal((await gw.stop()).code, 0);
});
