import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { tempHome } from '../helpers/home.ts';
import { runCli } from '../helpers/cli.ts';
import { spawnGateway } from '../helpers/gateway.ts';
import { validateConfig, ConfigError, loadConfig, parseConfigText, resolveEnvRef, setPath, splitPath } from '../../core/config/config.ts';

function writeConfig(dir: string, text: string): string {
  mkdirSync(dir, { recursive: true });
  const path = `${dir}/config.json`;
  writeFileSync(path, text);
  return path;
}

const BAD_CONFIGS: [string, string, RegExp][] = [
  ['an unknown key', '{"gateway": {"bindd": "lan"}}', /\/gateway\/bindd: unknown key/],
  ['a wrong type', '{"gateway": {"port": "eighty"}}', /\/gateway\/port: must be integer/],
  ['invalid JSON', '{"gateway": {', /not valid JSON/],
  ['a literal secret', '{"providers": {"anthropic": {"apiKey": "sk-ant-123"}}}', /\/providers\/anthropic\/apiKey/],
  ['a bad dmPolicy', '{"channels": {"telegram": {"dmPolicy": "everyone"}}}', /\/channels\/telegram\/dmPolicy/],
];

for (const [what, text, message] of BAD_CONFIGS) {
  test(`start with ${what} in config.json exits 1 naming the path and overwrites nothing`, async (t) => {
    const home = tempHome();
    t.after(home.cleanup);
    const path = writeConfig(home.dir, text);
    const res = await runCli(['start', '--port', '0'], { home: home.dir });
    assert.equal(res.code, 1, res.stderr);
    assert.match(res.stderr, message);
    assert.equal(readFileSync(path, 'utf8'), text, 'config.json untouched');
    assert.equal(existsSync(home.paths.runInfo), false);
    assert.equal(existsSync(home.paths.lock), false, 'no lock left behind');
  });
}

test('config validate reports the path of the first problem and exits 1', async (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  writeConfig(home.dir, '{"logging": {"level": "loud"}}');
  const res = await runCli(['config', 'validate'], { home: home.dir });
  assert.equal(res.code, 1);
  assert.match(res.stderr, /\/logging\/level/);
  const json = await runCli(['config', 'validate', '--json'], { home: home.dir });
  assert.equal(JSON.parse(json.stdout).valid, false);
  assert.equal(JSON.parse(json.stdout).path, '/logging/level');
});

test('config set refuses a wrong type without writing, accepts a right one and audits it', async (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  const bad = await runCli(['config', 'set', 'gateway.port', '"x"'], { home: home.dir });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /\/gateway\/port/);
  assert.equal(existsSync(home.paths.config), false, 'nothing written');

  const good = await runCli(['config', 'set', 'gateway.port', '18800'], { home: home.dir });
  assert.equal(good.code, 0, good.stderr);
  assert.equal(JSON.parse(readFileSync(home.paths.config, 'utf8')).gateway.port, 18800);
  const get = await runCli(['config', 'get', 'gateway.port', '--json'], { home: home.dir });
  assert.equal(JSON.parse(get.stdout), 18800);

  const db = new Database(home.paths.db, { readonly: true });
  t.after(() => db.close());
  const row = db.prepare("SELECT actor, data FROM audit WHERE action = 'config.set'").get() as { actor: string; data: string };
  assert.equal(row.actor, 'cli:owner');
  assert.deepEqual(JSON.parse(row.data).paths, ['/gateway/port']);
});

test('config get of the embedded defaults works with no config.json', async (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  const res = await runCli(['config', 'get', '--json'], { home: home.dir });
  assert.equal(res.code, 0, res.stderr);
  const config = JSON.parse(res.stdout);
  assert.equal(config.gateway.bind, 'loopback');
  assert.equal(config.gateway.port, 18789);
});

test('a running gateway keeps its last valid config when config.json is broken, and applies a valid edit', async (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  writeConfig(home.dir, '{"logging": {"level": "info"}}');
  const gw = await spawnGateway(home.dir);
  t.after(() => gw.stop('SIGKILL'));

  writeFileSync(home.paths.config, '{"logging": {"level": ');
  const deadline = Date.now() + 10_000;
  while (!gw.output().includes('config.json is invalid') && Date.now() < deadline) await delay(50);
  assert.match(gw.output(), /config\.json is invalid; keeping the last valid config/);
  assert.equal((await fetch(`${gw.url}/healthz`)).status, 200, 'still serving');

  writeFileSync(home.paths.config, '{"logging": {"level": "debug"}}');
  const db = new Database(home.paths.db, { readonly: true });
  t.after(() => db.close());
  let row: { data: string } | undefined;
  while (!row && Date.now() < deadline + 10_000) {
    row = db.prepare("SELECT data FROM audit WHERE action = 'config.reload'").get() as { data: string } | undefined;
    if (!row) await delay(50);
  }
  assert.ok(row, 'the valid edit was applied and audited');
  assert.deepEqual(JSON.parse(row.data).paths, ['/logging/level']);
  assert.equal((await gw.stop()).code, 0);
});

test('validateConfig names the JSON path of a nested error', () => {
  assert.throws(
    () => validateConfig({ agents: { list: [{ id: 'main', maxSteps: 0 }] } }),
    (err: unknown) => err instanceof ConfigError && err.path === '/agents/list/0/maxSteps',
  );
  assert.throws(() => validateConfig({ hooks: { ci: {} } }), (err: unknown) => err instanceof ConfigError && err.path === '/hooks/ci/secret' && /required property 'secret'/.test(err.message));
});

test('${ENV} references resolve from the environment at use, not at load', (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  writeConfig(home.dir, '{"providers": {"openai": {"apiKey": "${MY_KEY}", "baseUrl": "http://127.0.0.1:11434/v1"}}}');
  const { config } = loadConfig(home.paths.config);
  assert.equal(config.providers.openai.apiKey, '${MY_KEY}');
  assert.equal(resolveEnvRef(config.providers.openai.apiKey, { MY_KEY: 'k-123' }), 'k-123');
  assert.equal(resolveEnvRef('plain', {}), 'plain');
});

test('setPath steps into lists by index: set, append one past the end, unset removes; other indexes are refused naming the list', () => {
  const root = { agents: { list: [{ id: 'main' }, { id: 'work' }] } };
  assert.deepEqual(setPath(root, splitPath('agents.list.1.maxSteps'), 5), { agents: { list: [{ id: 'main' }, { id: 'work', maxSteps: 5 }] } });
  assert.deepEqual(setPath(root, splitPath('/agents/list/2'), { id: 'ops' }).agents, { list: [{ id: 'main' }, { id: 'work' }, { id: 'ops' }] });
  assert.deepEqual(setPath(root, splitPath('agents.list.0'), undefined).agents, { list: [{ id: 'work' }] });
  assert.throws(() => setPath(root, splitPath('agents.list.3.id'), 'x'), (err: ConfigError) => err.path === '/agents/list' && /not an index of this list \(0\.\.2\)/.test(err.message));
  assert.throws(() => setPath(root, splitPath('agents.list.first.id'), 'x'), ConfigError);
  assert.deepEqual(root.agents.list, [{ id: 'main' }, { id: 'work' }], 'the input is not changed');
});

test('offline config sets run at the same time all land: each takes the home lock before reading', async (t) => {
  const home = tempHome('cfg-race');
  t.after(home.cleanup);
  const runs = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => runCli(['config', 'set', `channels.c${i}.enabled`, 'false'], { home: home.dir })));
  assert.deepEqual(runs.map((r) => r.code), [0, 0, 0, 0, 0, 0], runs.map((r) => r.stderr).join('\n'));
  const channels = JSON.parse(readFileSync(home.paths.config, 'utf8')).channels;
  assert.deepEqual(Object.keys(channels).sort(), ['c0', 'c1', 'c2', 'c3', 'c4', 'c5']);
});

test('config errors name the member at fault and say what is wanted: a literal key, a bad map key, an enum, broken JSON on one line', () => {
  const refusal = (value: unknown) => {
    try {
      validateConfig(value);
    } catch (err) {
      return { path: (err as ConfigError).path, message: (err as ConfigError).message };
    }
    assert.fail('expected a ConfigError');
  };
  const literal = refusal({ providers: { anthropic: { apiKey: 'sk-literal' } } });
  assert.equal(literal.path, '/providers/anthropic/apiKey');
  assert.match(literal.message, /must be \{"secret":"NAME"\} or "\$\{ENV_VAR\}"/);
  const mapKey = refusal({ providers: { MiniMax: { api: 'anthropic' } } });
  assert.equal(mapKey.path, '/providers/MiniMax');
  assert.match(mapKey.message, /is not an allowed name/);
  assert.match(refusal({ logging: { level: 'loud' } }).message, /allowed values: "trace", "debug", "info", "warn", "error", "fatal"$/);
  assert.throws(() => parseConfigText('not json\n'), (err: ConfigError) => !err.message.includes('\n') && /not valid JSON/.test(err.message));
});

test('providers.<id>.proxy is http(s)://host:port: credentials in it would be a secret in config.json', () => {
  validateConfig({ providers: { anthropic: { proxy: 'http://127.0.0.1:3128' }, openai: { proxy: 'https://[::1]:8443/' } } });
  for (const proxy of ['http://user:pass@proxy.lan:3128', 'socks5://proxy.lan:1080', 'http://proxy.lan:3128/path']) {
    assert.throws(() => validateConfig({ providers: { anthropic: { proxy } } }), (err: unknown) => err instanceof ConfigError && err.path === '/providers/anthropic/proxy', proxy);
  }
});

test('gateway.bind is loopback, lan or an address: characters that could spell one are not enough', () => {
  for (const bind of ['loopback', 'lan', '192.168.1.20', '::1', 'fe80::1']) validateConfig({ gateway: { bind } });
  for (const bind of ['1.2.3', '999.1.1.1', ':::', '1.2.3.4.5']) {
    assert.throws(() => validateConfig({ gateway: { bind } }), (err: unknown) => err instanceof ConfigError && err.path === '/gateway/bind' && err.message.includes(bind), bind);
  }
});

test('a change through the gateway never overwrites a hand edit it refused: it is refused itself, naming the edit', async (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  writeConfig(home.dir, '{"logging": {"level": "info"}}');
  const gw = await spawnGateway(home.dir);
  t.after(() => gw.stop('SIGKILL'));
  const edit = '{"logging": {"level": "loud"}, "gateway": {"pluginIdleSeconds": 30}}';
  writeFileSync(home.paths.config, edit);
  const res = await runCli(['config', 'set', 'session.idleResetMinutes', '60'], { home: home.dir });
  assert.equal(res.code, 1);
  assert.match(res.stderr, /\/logging\/level: must be equal to one of the allowed values.* an edit in config\.json that is not applied; correct it first/);
  assert.equal(readFileSync(home.paths.config, 'utf8'), edit, 'the hand edit is still there');

  writeFileSync(home.paths.config, '{"logging": {"level": "debug"}, "gateway": {"pluginIdleSeconds": 30}}');
  const ok = await runCli(['config', 'set', 'session.idleResetMinutes', '60'], { home: home.dir });
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(JSON.parse(readFileSync(home.paths.config, 'utf8')), { logging: { level: 'debug' }, gateway: { pluginIdleSeconds: 30 }, session: { idleResetMinutes: 60 } }, 'a corrected edit not yet picked up is kept under the change');
  assert.equal((await gw.stop()).code, 0);
});
