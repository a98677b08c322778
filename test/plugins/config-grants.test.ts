import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { deriveGrant, pluginConfigFor } from '../../core/plugins/config-grants.ts';
import { check } from '../../core/plugins/capabilities.ts';
import { makeGrant } from '../../core/plugins/grant.ts';
import { permissionList } from '../../core/plugins/permissions.ts';
import { REPO_ROOT, validatePluginConfig, type Manifest } from '../../core/plugins/manifest.ts';
import type { ProviderConfig } from '../../core/config/config.ts';

const manifest = (name: string) => JSON.parse(readFileSync(join(REPO_ROOT, 'manifests', `${name}.json`), 'utf8')) as Manifest;
const granted = (m: Manifest) => permissionList(m.permissions);
const roots = { WORKSPACE: '/w', PLUGIN_DATA: '/d' };

test('channels.<id>.apiBaseUrl grants that host:port and the secrets meant for the default host', () => {
  const m = manifest('channel.telegram');
  const cfg = validatePluginConfig(m, pluginConfigFor(m, { channel: { enabled: true, dmPolicy: 'pairing', apiBaseUrl: 'http://127.0.0.1:8081/', groups: {} } }));
  assert.equal(cfg.apiBaseUrl, 'http://127.0.0.1:8081/', 'the channel config reaches the plugin');
  assert.equal(cfg.dmPolicy, undefined, "the router's keys stay with the router: the plugin's schema has none of them");
  const d = deriveGrant(m, cfg, granted(m), 'channels.telegram');
  assert.deepEqual(d.permissions.sort(), ['net:127.0.0.1:8081', 'secret:TELEGRAM_BOT_TOKEN@127.0.0.1', 'secret:TELEGRAM_WEBHOOK_SECRET@127.0.0.1']);
  assert.deepEqual(d.from, ['channels.telegram.apiBaseUrl -> 127.0.0.1:8081']);
});

test('no endpoint in config, no derived grant', () => {
  const m = manifest('channel.telegram');
  assert.deepEqual(deriveGrant(m, {}, granted(m), 'channels.telegram').permissions, []);
});

test('email endpoints: imap and smtp host/port (ports defaulted by tls) each get their own secret only', () => {
  const m = manifest('channel.email');
  const cfg = validatePluginConfig(m, pluginConfigFor(m, { channel: { from: 'a@b.c', imap: { host: 'mail.example.org', user: 'a' }, smtp: { host: 'smtp.example.org', port: 2525, tls: false, auth: true } } }));
  const d = deriveGrant(m, cfg, granted(m), 'channels.email');
  assert.deepEqual(d.permissions.sort(), ['net:mail.example.org:993', 'net:smtp.example.org:2525', 'secret:IMAP_PASSWORD@mail.example.org', 'secret:SMTP_AUTH_PLAIN@smtp.example.org']);
});

test('irc host/port: the plain port when tls is off, and the PASS/SASL secrets for that host', () => {
  const m = manifest('channel.irc');
  const d = deriveGrant(m, { host: 'irc.example.net', nick: 'bot' }, granted(m), 'channels.irc');
  assert.deepEqual(d.permissions.sort(), ['net:irc.example.net:6667', 'secret:IRC_PASSWORD@irc.example.net', 'secret:IRC_SASL_PLAIN@irc.example.net']);
});

test('providers.<id>: baseUrl is granted and the credential reaches the plugin as a secret name, never a value', () => {
  const m = manifest('provider.openai');
  const cfg = validatePluginConfig(m, pluginConfigFor(m, { provider: { apiKey: { secret: 'OLLAMA_KEY' }, baseUrl: 'http://127.0.0.1:11434/v1', proxy: null } }));
  assert.deepEqual(cfg, { baseUrl: 'http://127.0.0.1:11434/v1', apiKeySecret: 'OLLAMA_KEY' });
  const d = deriveGrant(m, cfg, granted(m), 'providers.openai');
  assert.deepEqual(d.permissions.sort(), ['net:127.0.0.1:11434', 'secret:OLLAMA_KEY@127.0.0.1']);
});

test("providers.<id>: an endpoint's key goes to that endpoint only, and the plugin's default key does not follow it", () => {
  const m = manifest('provider.openai');
  const derive = (provider: ProviderConfig) => deriveGrant(m, validatePluginConfig(m, pluginConfigFor(m, { provider })), granted(m), 'providers.x').permissions.sort();
  assert.deepEqual(derive({ baseUrl: 'http://127.0.0.1:11434/v1' }), ['net:127.0.0.1:11434'], 'a keyless endpoint gets no key');
  assert.deepEqual(derive({ apiKey: { secret: 'DEEPSEEK_API_KEY' }, baseUrl: 'https://api.deepseek.com/v1' }), ['net:api.deepseek.com:443', 'secret:DEEPSEEK_API_KEY@api.deepseek.com']);
  assert.deepEqual(derive({ apiKey: { secret: 'WORK_OPENAI_KEY' } }), ['secret:WORK_OPENAI_KEY@api.openai.com'], 'without a baseUrl the endpoint is the default host');
});

test("providers.<id>: an endpoint without a key or baseUrl of its own does not take them from plugins.<id>.config, which every endpoint shares", () => {
  const m = manifest('provider.openai');
  const shared = { apiKeySecret: 'OPENAI_API_KEY', baseUrl: 'https://proxy.example/v1' };
  const cfg = validatePluginConfig(m, pluginConfigFor(m, { plugin: shared, provider: { api: 'openai', baseUrl: 'http://10.0.0.9:11434/v1' } }));
  assert.equal(cfg.apiKeySecret, null);
  assert.deepEqual(deriveGrant(m, cfg, granted(m), 'providers.ollama').permissions, ['net:10.0.0.9:11434']);
  assert.equal(validatePluginConfig(m, pluginConfigFor(m, { plugin: shared, provider: { apiKey: { secret: 'DEEPSEEK_API_KEY' } } })).baseUrl, null);
});

test('a configured host name that resolves to a private address is allowed; the same address under another name is not', () => {
  const m = manifest('channel.telegram');
  const d = deriveGrant(m, { apiBaseUrl: 'http://nas.lan:8081' }, granted(m), 'channels.telegram');
  const g = makeGrant('telegram', [...granted(m), ...d.permissions], [], roots, d.configured);
  assert.equal(check(g, { cap: 'net.address', host: 'nas.lan', port: 8081, address: '192.168.1.5', private: true }).allowed, true);
  assert.equal(check(g, { cap: 'net.address', host: 'nas.lan', port: 8082, address: '192.168.1.5', private: true }).allowed, false);
  assert.equal(check(g, { cap: 'net.address', host: 'api.telegram.org', port: 443, address: '10.0.0.1', private: true }).allowed, false);
});

test('config deny still wins over a config-derived grant', () => {
  const m = manifest('channel.telegram');
  const d = deriveGrant(m, { apiBaseUrl: 'http://127.0.0.1:8081' }, granted(m), 'channels.telegram');
  const g = makeGrant('telegram', [...granted(m), ...d.permissions], ['net:127.0.0.1:8081'], roots, d.configured);
  assert.deepEqual(check(g, { cap: 'net', host: '127.0.0.1', port: 8081 }), { allowed: false, reason: 'denied by config' });
});
