import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tempHome } from '../helpers/home.ts';
import { spawnGateway } from '../helpers/gateway.ts';
import { runCli } from '../helpers/cli.ts';
import { startFakeOpenAI } from '../helpers/fake-openai.ts';
import { TEST_SECRETS } from '../helpers/test-secrets.ts';

// config.md: any number of compatible endpoints under their own ids. Three
// OpenAI-wire providers, each a loopback fake of its own: the bundled openai
// plugin serves each one as its own sandboxed instance with its own config and grant.

const OPENAI_KEY = TEST_SECRETS.openaiKey;
const DEEPSEEK_KEY = TEST_SECRETS.deepseekKey;

test('three OpenAI-wire endpoints serve their own models in one gateway, each with only its own key', async (t) => {
  const home = tempHome('e2e');
  t.after(home.cleanup);
  const fakes = { openai: await startFakeOpenAI(), ollama: await startFakeOpenAI(), deepseek: await startFakeOpenAI() };
  for (const f of Object.values(fakes)) t.after(() => f.close());
  mkdirSync(home.dir, { recursive: true, mode: 0o700 });
  writeFileSync(
    home.paths.config,
    JSON.stringify({
      providers: {
        openai: { apiKey: { secret: 'OPENAI_API_KEY' }, baseUrl: `${fakes.openai.url}/v1` },
        ollama: { api: 'openai', baseUrl: `${fakes.ollama.url}/v1` },
        deepseek: { api: 'openai', apiKey: { secret: 'DEEPSEEK_API_KEY' }, baseUrl: `${fakes.deepseek.url}/v1` },
      },
      agents: {
        defaults: { model: 'openai/gpt-4.1-mini' },
        list: [{ id: 'main' }, { id: 'local', model: 'ollama/llama3.2' }, { id: 'deep', model: 'deepseek/deepseek-chat' }],
      },
    }),
  );
  for (const [name, value] of [['OPENAI_API_KEY', OPENAI_KEY], ['DEEPSEEK_API_KEY', DEEPSEEK_KEY]]) {
    const set = await runCli(['secrets', 'set', name], { home: home.dir, input: value });
    assert.equal(set.code, 0, set.stderr);
  }
  const gw = await spawnGateway(home.dir, { env: { ANTHROPIC_API_KEY: '', OPENAI_API_KEY: '', OPENAI_BASE_URL: '', CARAPACE_MODEL: '' } });
  t.after(() => gw.stop('SIGKILL'));

  fakes.openai.push({ text: 'From OpenAI.' });
  fakes.ollama.push({ text: 'From Ollama.' });
  fakes.deepseek.push({ text: 'From DeepSeek.' });
  for (const [agent, answer] of [['main', /From OpenAI\./], ['local', /From Ollama\./], ['deep', /From DeepSeek\./]] as const) {
    const res = await runCli(['chat', '--agent', agent, 'hello'], { home: home.dir });
    assert.equal(res.code, 0, res.stderr + gw.output());
    assert.match(res.stdout, answer);
  }

  assert.deepEqual(
    Object.fromEntries(Object.entries(fakes).map(([id, f]) => [id, f.requests.map((r) => r.body.model)])),
    { openai: ['gpt-4.1-mini'], ollama: ['llama3.2'], deepseek: ['deepseek-chat'] },
    'each model went to its own endpoint',
  );
  assert.equal(fakes.openai.requests[0].headers.authorization, `Bearer ${OPENAI_KEY}`);
  assert.equal(fakes.deepseek.requests[0].headers.authorization, `Bearer ${DEEPSEEK_KEY}`);
  // The plugin gives a keyless endpoint a placeholder bearer (the SDK insists on one): no key of anyone's.
  assert.equal(fakes.ollama.requests[0].headers.authorization, 'Bearer carapace-no-key');
  assert.doesNotMatch(gw.output(), new RegExp(`${OPENAI_KEY}|${DEEPSEEK_KEY}`), 'no key is in any log line');

  const status = await runCli(['status', '--json'], { home: home.dir });
  assert.equal(status.code, 0, status.stderr);
  const rows = (JSON.parse(status.stdout) as { plugins: { plugins: { id: string; kind?: string; state: string }[] } }).plugins.plugins;
  for (const id of ['openai', 'openai.ollama', 'openai.deepseek']) {
    assert.deepEqual(
      rows.filter((r) => r.id === id).map((r) => [r.kind, r.state]),
      [['provider', 'running']],
      `${id} runs as its own instance`,
    );
  }

  // Each instance was granted what its own providers.<id> section implies, and nothing of the others'.
  const audit = await runCli(['audit', '--action', 'plugin.grant.derived', '--json'], { home: home.dir });
  assert.equal(audit.code, 0, audit.stderr);
  const grants = new Map((JSON.parse(audit.stdout) as { entries: { target: string; data: { permissions: string[] } }[] }).entries.map((r) => [r.target, r.data.permissions.sort()]));
  const net = (f: { url: string }) => `net:127.0.0.1:${new URL(f.url).port}`;
  assert.deepEqual(grants.get('openai'), [net(fakes.openai), 'secret:OPENAI_API_KEY@127.0.0.1']);
  assert.deepEqual(grants.get('openai.ollama'), [net(fakes.ollama)]);
  assert.deepEqual(grants.get('openai.deepseek'), [net(fakes.deepseek), 'secret:DEEPSEEK_API_KEY@127.0.0.1']);

  // Re-pointing an endpoint (through the running gateway's config.set) applies to
  // the next turn: that endpoint's instance starts again with the new entry.
  const moved = await startFakeOpenAI();
  t.after(() => moved.close());
  const set = await runCli(['config', 'set', 'providers.ollama.baseUrl', `${moved.url}/v1`], { home: home.dir });
  assert.equal(set.code, 0, set.stderr);
  moved.push({ text: 'From the moved Ollama.' });
  const again = await runCli(['chat', '--agent', 'local', 'hello again'], { home: home.dir });
  assert.equal(again.code, 0, again.stderr + gw.output());
  assert.match(again.stdout, /From the moved Ollama\./);
  assert.equal(fakes.ollama.requests.length, 1, 'nothing more went to the old endpoint');
});
