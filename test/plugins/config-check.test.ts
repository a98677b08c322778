// A plugin's own keys in config.json are checked against its manifest schema at
// the same moments as the kernel's: `config validate`, every `config set`, every
// edit a running gateway picks up — and refused naming their JSON path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { dirname } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { tempHome } from '../helpers/home.ts';
import { runCli } from '../helpers/cli.ts';
import { spawnGateway } from '../helpers/gateway.ts';
import { ConfigError } from '../../core/config/config.ts';
import { checkPluginConfig } from '../../core/plugins/config-check.ts';
import { verifiedManifests } from '../../core/plugins/installed.ts';

const home = tempHome();
test.after(home.cleanup);
const manifests = verifiedManifests(home.paths);
const irc = { host: 'irc.example.org', nick: 'crab' };

function refusal(raw: Record<string, unknown>): ConfigError {
  try {
    checkPluginConfig(raw, manifests);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err;
  }
  assert.fail(`accepted: ${JSON.stringify(raw)}`);
}

test('the bundled plugins verify and bring their schemas', () => {
  const ids = manifests.map((m) => m.id);
  for (const id of ['irc', 'telegram', 'clock', 'anthropic', 'hybrid']) assert.ok(ids.includes(id), `${id} in ${ids}`);
});

test('a channel plugin’s keys: a typo, a wrong type and a missing one are named by their path in channels.<id>', () => {
  const typo = refusal({ channels: { irc: { ...irc, hots: 'x' } } });
  assert.equal(typo.path, '/channels/irc/hots');
  assert.match(typo.message, /unknown key.*plugin irc/);
  assert.equal(refusal({ channels: { irc: { ...irc, port: 'six' } } }).path, '/channels/irc/port');
  assert.equal(refusal({ channels: { irc: { host: 'irc.example.org' } } }).path, '/channels/irc/nick');
  // A key the kernel knows for channels but this plugin has no use for.
  assert.equal(refusal({ channels: { irc: { ...irc, apiBaseUrl: 'http://127.0.0.1:1' } } }).path, '/channels/irc/apiBaseUrl');
  const mode = refusal({ channels: { telegram: { mode: 'carrier-pigeon' } } });
  assert.equal(mode.path, '/channels/telegram/mode');
  assert.match(mode.message, /"polling"/);
});

test('plugins.<id>.config is checked under its own path, for every kind of plugin', () => {
  assert.equal(refusal({ plugins: { clock: { config: { tz: 'UTC' } } } }).path, '/plugins/clock/config/tz');
  assert.equal(refusal({ plugins: { anthropic: { config: { timeoutMs: 'soon' } } } }).path, '/plugins/anthropic/config/timeoutMs');
  assert.equal(refusal({ channels: { irc }, plugins: { irc: { config: { floodBurst: 'many' } } } }).path, '/plugins/irc/config/floodBurst');
});

test('what the schemas take passes: the router’s keys, a switched-off half-written channel, a section no plugin owns', () => {
  checkPluginConfig({ channels: { irc: { ...irc, dmPolicy: 'allowlist', allowFrom: ['alice'], requireMention: true, port: 6697 } } }, manifests);
  checkPluginConfig({ channels: { email: { enabled: false, from: 'a@example.org' } } }, manifests);
  checkPluginConfig({ plugins: { irc: { enabled: false, config: { nonsense: 1 } } } }, manifests);
  checkPluginConfig({ channels: { webchat: { dmPolicy: 'open' } }, plugins: { 'not-installed': { config: { x: 1 } } } }, manifests);
  checkPluginConfig({ channels: { telegram: { mode: 'webhook', webhookUrl: 'https://bot.example.org/hook' } } }, manifests);
});

function writeConfig(dir: string, value: unknown): string {
  const path = `${dir}/config.json`;
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(value));
  return path;
}

test('offline: config validate and config set refuse a plugin’s bad key by its path; nothing is written', async (t) => {
  const h = tempHome();
  t.after(h.cleanup);
  writeConfig(h.dir, { channels: { telegram: { mdoe: 'polling' } } });
  const res = await runCli(['config', 'validate', '--json'], { home: h.dir });
  assert.equal(res.code, 1);
  assert.deepEqual({ ...JSON.parse(res.stdout), error: undefined }, { valid: false, file: h.paths.config, path: '/channels/telegram/mdoe', error: undefined });
  const doctor = await runCli(['doctor', '--json'], { home: h.dir });
  assert.equal(doctor.code, 1);
  assert.match(doctor.stderr, /^carapace doctor: \d+ error-level findings? remains?: apply the fix each one names/);
  const finding = JSON.parse(doctor.stdout).findings.find((f: { id: string }) => f.id === 'config.plugin-invalid');
  assert.match(finding?.what ?? '', /\/channels\/telegram\/mdoe: unknown key/);

  writeConfig(h.dir, { logging: { level: 'info' } });
  const before = readFileSync(h.paths.config, 'utf8');
  const set = await runCli(['config', 'set', 'channels.irc', JSON.stringify({ ...irc, hots: 'x' })], { home: h.dir });
  assert.equal(set.code, 1);
  assert.match(set.stderr, /\/channels\/irc\/hots: unknown key/);
  assert.equal(readFileSync(h.paths.config, 'utf8'), before, 'config.json unchanged');
  const ok = await runCli(['config', 'set', 'channels.irc', JSON.stringify({ ...irc, enabled: false })], { home: h.dir });
  assert.equal(ok.code, 0, ok.stderr);
});

test('a running gateway refuses such a change over the bus and keeps its last valid config when the file gets one', async (t) => {
  const h = tempHome();
  t.after(h.cleanup);
  writeConfig(h.dir, { logging: { level: 'info' } });
  const gw = await spawnGateway(h.dir);
  t.after(() => gw.stop('SIGKILL'));

  const set = await runCli(['config', 'set', 'plugins.clock.config', '{"tz":"UTC"}'], { home: h.dir });
  assert.equal(set.code, 1);
  assert.match(set.stderr, /\/plugins\/clock\/config\/tz/);
  assert.equal(JSON.parse(readFileSync(h.paths.config, 'utf8')).plugins, undefined, 'nothing written');

  writeFileSync(h.paths.config, JSON.stringify({ logging: { level: 'debug' }, channels: { irc: { ...irc, hots: 'x' } } }));
  const deadline = Date.now() + 10_000;
  while (!gw.output().includes('/channels/irc/hots') && Date.now() < deadline) await delay(50);
  assert.match(gw.output(), /config\.json is invalid; keeping the last valid config.*\/channels\/irc\/hots: unknown key/);
  assert.equal((await gw.stop()).code, 0);
  const db = new Database(h.paths.db, { readonly: true });
  t.after(() => db.close());
  assert.deepEqual(db.prepare("SELECT action FROM audit WHERE action LIKE 'config.%'").all(), [], 'neither change was applied');
});
