import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tempHome } from '../helpers/home.ts';
import { spawnGateway } from '../helpers/gateway.ts';
import { runCli } from '../helpers/cli.ts';
import { startFakeAnthropic } from '../helpers/fake-anthropic.ts';
import { startFakeOpenAI } from '../helpers/fake-openai.ts';
import { TEST_SECRETS } from '../helpers/test-secrets.ts';

// "npm start must come up with no config at all ... and a provider picked from the
// environment" (config.md): no config.json, only environment variables.

test('with no config, ANTHROPIC_API_KEY in the environment is enough to chat', async (t) => {
  const home = tempHome('env');
  t.after(home.cleanup);
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const env = { ANTHROPIC_API_KEY: TEST_SECRETS.anthropicKey, ANTHROPIC_BASE_URL: fake.url, OPENAI_API_KEY: '', OPENAI_BASE_URL: '' };
  const gw = await spawnGateway(home.dir, { env });
  t.after(() => gw.stop('SIGKILL'));
  fake.push({ text: 'Hi from the default model.' });
  const res = await runCli(['chat', 'hello'], { home: home.dir, env });
  assert.equal(res.code, 0, res.stderr + gw.output());
  assert.match(res.stdout, /Hi from the default model\./);
  assert.equal(fake.requests[0].headers['x-api-key'], TEST_SECRETS.anthropicKey);
  assert.equal(fake.requests[0].body.model, 'claude-sonnet-4-6', 'a current default model');
  const status = await runCli(['status'], { home: home.dir, env });
  assert.match(status.stdout, /^sessions: 1 \(/m, 'the chat left one stored session');
  assert.match(status.stdout, /^providers: anthropic; default model anthropic\/claude-sonnet-4-6$/m);
});

test('with no config, OPENAI_BASE_URL alone (a local Ollama) is enough to chat', async (t) => {
  const home = tempHome('env');
  t.after(home.cleanup);
  const fake = await startFakeOpenAI();
  t.after(() => fake.close());
  const env = { ANTHROPIC_API_KEY: '', OPENAI_API_KEY: '', OPENAI_BASE_URL: `${fake.url}/v1`, CARAPACE_MODEL: 'openai/llama3.2' };
  const gw = await spawnGateway(home.dir, { env });
  t.after(() => gw.stop('SIGKILL'));
  fake.push({ text: 'Hello from a local model.' });
  const res = await runCli(['chat', 'hello'], { home: home.dir, env });
  assert.equal(res.code, 0, res.stderr + gw.output());
  assert.match(res.stdout, /Hello from a local model\./);
  assert.equal(fake.requests[0].body.model, 'llama3.2');
});

test('with no provider, status says plainly how to add one', async (t) => {
  const home = tempHome('env');
  t.after(home.cleanup);
  const env = { ANTHROPIC_API_KEY: '', OPENAI_API_KEY: '', OPENAI_BASE_URL: '' };
  const gw = await spawnGateway(home.dir, { env });
  t.after(() => gw.stop('SIGKILL'));
  const res = await runCli(['status', '--json'], { home: home.dir, env });
  assert.equal(res.code, 0, res.stderr);
  const status = JSON.parse(res.stdout);
  assert.deepEqual(status.agent.providers, []);
  assert.match(status.agent.hint, /Set ANTHROPIC_API_KEY or OPENAI_API_KEY/);
  const human = await runCli(['status'], { home: home.dir, env });
  assert.match(human.stdout, /Set ANTHROPIC_API_KEY or OPENAI_API_KEY/);
});
