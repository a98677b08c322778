import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tempHome } from '../helpers/home.ts';
import { spawnGateway } from '../helpers/gateway.ts';
import { runCli } from '../helpers/cli.ts';
import { startFakeAnthropic } from '../helpers/fake-anthropic.ts';
import { TEST_SECRETS } from '../helpers/test-secrets.ts';

// cli.md's sessions, logs and channels verbs against a real gateway.

test('carapace sessions list|show|reset, logs [--session] and channels status', async (t) => {
  const home = tempHome('cli-verbs');
  t.after(home.cleanup);
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  mkdirSync(home.dir, { recursive: true, mode: 0o700 });
  writeFileSync(home.paths.config, JSON.stringify({ providers: { anthropic: { apiKey: '${ANTHROPIC_API_KEY}', baseUrl: fake.url } }, agents: { defaults: { model: 'anthropic/claude-sonnet-4-6' } } }));
  const gw = await spawnGateway(home.dir, { env: { ANTHROPIC_API_KEY: TEST_SECRETS.anthropicKey, OPENAI_API_KEY: '' } });
  t.after(() => gw.stop('SIGKILL'));
  fake.push({ text: 'Hello from the model.' });
  const chat = await runCli(['chat', '--session', 'agent:main:cli', 'Say hello.'], { home: home.dir });
  assert.equal(chat.code, 0, chat.stderr);

  const list = await runCli(['sessions', 'list', '--json'], { home: home.dir });
  assert.equal(list.code, 0, list.stderr);
  assert.ok((JSON.parse(list.stdout).sessions as { sessionKey: string }[]).some((s) => s.sessionKey === 'agent:main:cli'), list.stdout);
  const show = await runCli(['sessions', 'show', 'agent:main:cli'], { home: home.dir });
  assert.equal(show.code, 0, show.stderr);
  assert.match(show.stdout, /user: Say hello\./);
  assert.match(show.stdout, /assistant: Hello from the model\./);
  const reset = await runCli(['sessions', 'reset', 'agent:main:cli', '--json'], { home: home.dir });
  assert.deepEqual(JSON.parse(reset.stdout), { reset: true });
  const bad = await runCli(['sessions', 'show'], { home: home.dir });
  assert.equal(bad.code, 2);

  const logs = await runCli(['logs', '--json'], { home: home.dir });
  assert.equal(logs.code, 0, logs.stderr);
  const records = JSON.parse(logs.stdout).records as { msg: string; sessionKey?: string }[];
  assert.ok(records.some((r) => r.msg === 'gateway ready'), 'the gateway log is read');
  const scoped = await runCli(['logs', '--session', 'agent:main:cli', '--json'], { home: home.dir });
  const mine = JSON.parse(scoped.stdout).records as { sessionKey?: string }[];
  assert.ok(mine.length > 0 && mine.every((r) => r.sessionKey === 'agent:main:cli'), scoped.stdout);
  assert.ok(records.some((r) => r.sessionKey !== 'agent:main:cli'), 'the filter left others out');
  assert.equal((await runCli(['logs', '--session', 'nope'], { home: home.dir })).code, 2);

  const channels = await runCli(['channels', 'status', '--json'], { home: home.dir });
  assert.equal(channels.code, 0, channels.stderr);
  const seen = JSON.parse(channels.stdout) as { channels: unknown[]; queue: Record<string, number> };
  assert.ok(Array.isArray(seen.channels));
  assert.equal(typeof seen.queue, 'object');
  assert.equal((await gw.stop()).code, 0);
  const offline = await runCli(['sessions', 'list'], { home: home.dir });
  assert.equal(offline.code, 1);
  assert.match(offline.stderr, /gateway is not running/);
});
