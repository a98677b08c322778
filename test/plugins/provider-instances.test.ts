import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makePlugin, throwawayPublisher, type TestPlugin } from '../helpers/plugins.ts';
import { startHost, stateOf } from '../helpers/plugin-host.ts';
import { mapSecrets } from '../../core/secrets/source.ts';
import { removePlugin, installFolder } from '../../core/plugins/install.ts';
import type { KeyPair } from '../../core/identity/keys.ts';
import type { LoadSpec, PluginInstance } from '../../core/plugins/runtime.ts';
import type { CompletionRequest, CompletionResult } from '../../core/plugin-api.ts';
import type { ProviderConfig } from '../../core/config/config.ts';
import { until } from '../helpers/wait.ts';
import { startHttpProxy } from '../helpers/http-proxy.ts';
import { haveOpenssl, selfSignedCert } from '../helpers/mail-servers.ts';

// A provider plugin is written for one endpoint (its `carapace.config`); every
// further configured endpoint of the same wire format runs as an instance of its
// own (`<plugin>.<provider>`): own config, grant, state and circuit.

const KEYS = { A_KEY: 'a-secret-3e1f9d', B_KEY: 'b-secret-7c2a4b' };

// `complete` sends `{{secret:<request.key>}}` to `request.url` (default: its configured
// endpoint) and answers with what the previous call, of any instance, left in kv.
const PROBE = `
exports.models = async () => [];
exports.complete = async (req) => {
  if (req.model === 'spin') for (;;) {}
  await carapace.net.fetch(req.url ?? carapace.config.baseUrl, { headers: { 'x-key': '{{secret:' + req.key + '}}' } });
  const before = await carapace.kv.get('last');
  await carapace.kv.set('last', carapace.config.baseUrl);
  return { message: { role: 'assistant', content: [{ type: 'text', text: String(before) }] }, stopReason: 'end', usage: { inputTokens: 0, outputTokens: 0 } };
};`;

function probe(kp: KeyPair, extra: Record<string, unknown> = {}): TestPlugin {
  return makePlugin({ 'index.js': PROBE }, {
    id: 'probe',
    kind: 'provider',
    limits: { memoryMb: 16, callTimeoutMs: 300 },
    config: { type: 'object', properties: { baseUrl: { type: ['string', 'null'] }, apiKeySecret: { type: ['string', 'null'] } }, additionalProperties: false },
    ...extra,
  }, kp);
}

/** A loopback endpoint recording the `x-key` header of each request. */
async function endpoint(t: { after(fn: () => unknown): void }): Promise<{ url: string; seen: string[] }> {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(String(req.headers['x-key']));
    res.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/`, seen };
}

const ask = (r: Partial<CompletionRequest> & { key?: string; url?: string }) => ({ model: 'm', messages: [], ...r }) as CompletionRequest;
const none = () => {};
const said = (r: CompletionResult) => (r.message.content[0] as { text: string }).text;

type ApiKey = ProviderConfig['apiKey'];
async function twoEndpoints(t: import('node:test').TestContext, deps: Parameters<typeof startHost>[3] = {}, keys: { probe: ApiKey; second: ApiKey } = { probe: { secret: 'A_KEY' }, second: { secret: 'B_KEY' } }) {
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const p = probe(pub.kp);
  t.after(p.cleanup);
  const a = await endpoint(t);
  const b = await endpoint(t);
  const providers: Record<string, ProviderConfig> = {
    probe: { baseUrl: a.url, apiKey: keys.probe },
    second: { baseUrl: b.url, apiKey: keys.second },
  };
  const fx = await startHost(t, [p], pub.kp, { secrets: mapSecrets(KEYS), userConfig: () => ({ providers }), ...deps });
  return { fx, a, b, pub };
}

test('each endpoint of a provider plugin is its own instance, made on first use, with its own config and grant', async (t) => {
  const { fx, a, b } = await twoEndpoints(t);
  assert.equal(fx.host.list().some((r) => r.id === 'probe.second'), false, 'nothing is made before it is used');
  assert.equal(fx.host.providerInstance('probe', 'probe'), 'probe', "the endpoint named like the plugin is the plugin's own entry");
  const second = fx.host.providerInstance('second', 'probe');
  assert.equal(second, 'probe.second');
  assert.equal(fx.host.providerInstance('second', 'probe'), second, 'one instance per endpoint');
  assert.deepEqual(
    fx.host.list().filter((r) => r.id.startsWith('probe')).map((r) => [r.id, r.kind, r.version, r.source, r.state]),
    [['probe', 'provider', '1.0.0', 'installed', 'stopped'], ['probe.second', 'provider', '1.0.0', 'installed', 'stopped']],
  );
  assert.deepEqual(fx.host.pluginsOf('provider').filter((id) => id.startsWith('probe')), ['probe'], 'pluginsOf names plugins, not instances');

  assert.equal(said(await fx.host.complete('probe', ask({ key: 'A_KEY' }), none)), 'null');
  assert.equal(said(await fx.host.complete(second, ask({ key: 'B_KEY' }), none)), 'null', 'its own kv: nothing of what the other instance kept');
  assert.equal(said(await fx.host.complete(second, ask({ key: 'B_KEY' }), none)), b.url, 'its own config');
  assert.deepEqual([a.seen, b.seen], [[KEYS.A_KEY], [KEYS.B_KEY, KEYS.B_KEY]], 'each endpoint got its own key');

  // The grant is the instance's: the other endpoint's key and host are not in it.
  await assert.rejects(fx.host.complete(second, ask({ key: 'A_KEY' }), none), /plugin probe\.second may not send secret A_KEY/);
  await assert.rejects(fx.host.complete(second, ask({ key: 'B_KEY', url: a.url }), none), new RegExp(`plugin probe\\.second may not connect to 127\\.0\\.0\\.1:${new URL(a.url).port}`));
  await assert.rejects(fx.host.complete('probe', ask({ key: 'B_KEY' }), none), /plugin probe may not send secret B_KEY/);
  assert.deepEqual([a.seen, b.seen], [[KEYS.A_KEY], [KEYS.B_KEY, KEYS.B_KEY]], 'nothing crossed over');
  const derived = new Map(fx.audit.list({ action: 'plugin.grant.derived' }).map((r) => [r.target, (r.data.permissions as string[]).sort()]));
  assert.deepEqual(derived.get('probe.second'), [`net:127.0.0.1:${new URL(b.url).port}`, 'secret:B_KEY@127.0.0.1']);
  assert.deepEqual(derived.get('probe'), [`net:127.0.0.1:${new URL(a.url).port}`, 'secret:A_KEY@127.0.0.1']);
});

test('an instance of an unknown, disabled or refused plugin is refused with the reason', async (t) => {
  const { fx, pub } = await twoEndpoints(t, { pluginConfig: () => ({ probe: { enabled: false } }) });
  assert.throws(() => fx.host.providerInstance('second', 'nope'), (e: Error & { code?: string }) => e.code === 'NOT_FOUND' && /no plugin nope/.test(e.message));
  assert.throws(() => fx.host.providerInstance('x', 'clock'), (e: Error & { code?: string }) => e.code === 'INVALID_REQUEST' && /clock is not a provider plugin/.test(e.message));
  assert.throws(() => fx.host.providerInstance('second', 'probe'), (e: Error & { code?: string }) => e.code === 'UNAVAILABLE' && /probe is disabled/.test(e.message));
  assert.equal(fx.host.list().some((r) => r.id === 'probe.second'), false);

  writeFileSync(join(fx.paths.pluginsDir, 'probe', '1.0.0', 'index.js'), 'exports.models = async () => [];');
  const fx2 = await startHost(t, [], pub.kp, { paths: fx.paths, audit: fx.audit });
  assert.throws(() => fx2.host.providerInstance('second', 'probe'), (e: Error & { code?: string }) => e.code === 'UNAVAILABLE' && /probe was refused: .*index\.js/.test(e.message));
});

test("a config the plugin refuses refuses only its own endpoint's instance", async (t) => {
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const p = probe(pub.kp);
  t.after(p.cleanup);
  const b = await endpoint(t);
  const providers: Record<string, ProviderConfig> = { probe: { baseUrl: 42 as unknown as string }, second: { baseUrl: b.url, apiKey: { secret: 'B_KEY' } } };
  const fx = await startHost(t, [p], pub.kp, { secrets: mapSecrets(KEYS), userConfig: () => ({ providers }) });
  await assert.rejects(fx.host.complete(fx.host.providerInstance('probe', 'probe'), ask({ key: 'A_KEY' }), none), /config for plugin probe is invalid at "\/baseUrl"/);
  assert.equal(stateOf(fx.host, 'probe'), 'refused');
  assert.equal(said(await fx.host.complete(fx.host.providerInstance('second', 'probe'), ask({ key: 'B_KEY' }), none)), 'null');
  assert.deepEqual(b.seen, [KEYS.B_KEY]);
});

test('an instance fails, backs off and opens its circuit on its own; the other endpoints keep working', async (t) => {
  const { fx } = await twoEndpoints(t, { backoff: { baseMs: 10, maxMs: 20, circuitAfter: 2, windowMs: 60_000 } });
  const second = fx.host.providerInstance('second', 'probe');
  for (let i = 0; i < 10 && stateOf(fx.host, second) !== 'open'; i++) {
    await fx.waitFor(() => ['stopped', 'running', 'open'].includes(stateOf(fx.host, second)!), 'the instance ready');
    if (stateOf(fx.host, second) !== 'open') await assert.rejects(fx.host.complete(second, ask({ model: 'spin' }), none));
  }
  await assert.rejects(fx.host.complete(second, ask({ key: 'B_KEY' }), none), /probe\.second failed repeatedly .*circuit open/);
  assert.equal(said(await fx.host.complete('probe', ask({ key: 'A_KEY' }), none)), 'null');
  const rows = new Map(fx.host.list().map((r) => [r.id, r]));
  assert.deepEqual([rows.get('probe')!.state, rows.get('probe')!.failures, rows.get('probe')!.restarts], ['running', 0, 0]);
  assert.deepEqual([rows.get(second)!.state, rows.get(second)!.failures], ['open', 2]);
  assert.equal(rows.get(second)!.restarts, 1, 'restarted once after its first failure');
  assert.deepEqual(fx.audit.list({ action: 'plugin.circuit-open' }).map((r) => r.target), [second]);
});

/** A worker runtime stand-in that records which instances were loaded and stopped. */
/** A worker runtime that records loads and stops; `hold()` makes the next load wait until released. */
function recordingRuntime() {
  const loaded: string[] = [];
  const stopped: string[] = [];
  let gate: Promise<void> | null = null;
  const loadWorker = async (spec: LoadSpec): Promise<PluginInstance> => {
    loaded.push(`${spec.id}@${spec.config.baseUrl}`);
    const waitFor = gate;
    gate = null;
    await waitFor;
    return { runtime: 'worker', call: async () => [], deliver: async () => {}, stop: async () => void stopped.push(spec.id), onExit: () => {} };
  };
  const hold = () => {
    let release!: () => void;
    gate = new Promise((r) => (release = r));
    return release;
  };
  return { loaded, stopped, loadWorker, hold };
}

test('instances stop with the host, and go when their plugin is removed or replaced', async (t) => {
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const v1 = probe(pub.kp, { runtime: 'worker' });
  const v2 = probe(pub.kp, { runtime: 'worker', version: '1.0.1' });
  t.after(v1.cleanup);
  t.after(v2.cleanup);
  const rt = recordingRuntime();
  const providers: Record<string, ProviderConfig> = { probe: { baseUrl: 'http://127.0.0.1:1/a' }, x: { baseUrl: 'http://127.0.0.1:1/x' }, y: { baseUrl: 'http://127.0.0.1:1/y' } };
  const fx = await startHost(t, [v1], pub.kp, { allowWorker: true, loadWorker: rt.loadWorker, userConfig: () => ({ providers }) });
  const use = (provider: string) => fx.host.models(fx.host.providerInstance(provider, 'probe'));
  await use('probe');
  await use('x');
  assert.deepEqual(rt.loaded, ['probe@http://127.0.0.1:1/a', 'probe.x@http://127.0.0.1:1/x']);

  installFolder(fx.paths, v2.dir, { allowWorker: true });
  assert.deepEqual(await fx.host.reloadInstalled(), { added: [], replaced: ['probe'], removed: [] });
  assert.deepEqual(rt.stopped.sort(), ['probe', 'probe.x']);
  assert.equal(fx.host.list().some((r) => r.id === 'probe.x'), false, 'the old code is not kept running for an instance');
  await use('y');
  assert.equal(fx.host.list().find((r) => r.id === 'probe.y')!.version, '1.0.1', 'a new instance runs the new version');

  removePlugin(fx.paths, 'probe');
  assert.deepEqual(await fx.host.reloadInstalled(), { added: [], replaced: [], removed: ['probe'] });
  assert.deepEqual(rt.stopped.sort(), ['probe', 'probe.x', 'probe.y']);
  assert.deepEqual(fx.host.list().filter((r) => r.id.startsWith('probe')), []);
  assert.throws(() => fx.host.providerInstance('y', 'probe'), /no plugin probe/);

  const fx2 = await startHost(t, [v1], pub.kp, { allowWorker: true, loadWorker: rt.loadWorker, userConfig: () => ({ providers }) });
  rt.stopped.length = 0;
  await fx2.host.models(fx2.host.providerInstance('x', 'probe'));
  await fx2.host.stop();
  assert.deepEqual(rt.stopped, ['probe.x']);
});

test('an edited or removed providers.<id> entry stops its instance; the next use runs what the entry now says', async (t) => {
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const p = probe(pub.kp, { runtime: 'worker' });
  t.after(p.cleanup);
  const rt = recordingRuntime();
  let providers: Record<string, ProviderConfig> = { probe: { baseUrl: 'http://127.0.0.1:1/a' }, x: { baseUrl: 'http://127.0.0.1:1/x' } };
  let notify: (ids: string[]) => void = () => {};
  const fx = await startHost(t, [p], pub.kp, {
    allowWorker: true,
    loadWorker: rt.loadWorker,
    userConfig: () => ({ providers }),
    watchProviders: (changed) => ((notify = changed), () => {}),
  });
  await fx.host.start();
  const use = (provider: string) => fx.host.models(fx.host.providerInstance(provider, 'probe'));
  await use('probe');
  await use('x');

  providers = { ...providers, x: { baseUrl: 'http://127.0.0.1:1/x2' } };
  notify(['x']);
  await until('the edited endpoint stops', () => rt.stopped.includes('probe.x'));
  assert.equal(fx.host.list().some((r) => r.id === 'probe.x'), false);
  await use('x');
  assert.deepEqual(rt.loaded.slice(-1), ['probe.x@http://127.0.0.1:1/x2'], 'the new endpoint, not the old one');
  assert.deepEqual(rt.stopped, ['probe.x'], 'the other endpoint kept running');

  providers = { x: providers.x };
  notify(['probe']);
  await until('the removed endpoint stops', () => rt.stopped.includes('probe'));
  assert.equal(fx.host.list().find((r) => r.id === 'probe')!.state, 'stopped', "the plugin's own entry stays, stopped");
});

test('an instance that finishes starting after its plugin was removed is stopped, not left running', async (t) => {
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const p = probe(pub.kp, { runtime: 'worker' });
  t.after(p.cleanup);
  const rt = recordingRuntime();
  const providers: Record<string, ProviderConfig> = { x: { baseUrl: 'http://127.0.0.1:1/x' } };
  const fx = await startHost(t, [], pub.kp, { allowWorker: true, loadWorker: rt.loadWorker, userConfig: () => ({ providers }) });
  installFolder(fx.paths, p.dir, { allowWorker: true });
  await fx.host.reloadInstalled();
  const release = rt.hold();
  const starting = fx.host.models(fx.host.providerInstance('x', 'probe'));
  await until('the instance starts loading', () => rt.loaded.length === 1);
  removePlugin(fx.paths, 'probe');
  const removed = fx.host.reloadInstalled();
  release();
  await assert.rejects(starting, /removed/);
  await removed;
  assert.deepEqual(rt.stopped, ['probe.x']);
  assert.deepEqual(fx.host.list().filter((r) => r.id.startsWith('probe')), []);
});

test("providers.<id>.proxy carries that endpoint's requests, and only its own", async (t) => {
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const p = probe(pub.kp);
  t.after(p.cleanup);
  const [a, b, proxy] = [await endpoint(t), await endpoint(t), await startHttpProxy()];
  t.after(proxy.close);
  const providers: Record<string, ProviderConfig> = {
    probe: { baseUrl: a.url, apiKey: { secret: 'A_KEY' }, proxy: proxy.url },
    second: { baseUrl: b.url, apiKey: { secret: 'B_KEY' } },
  };
  const fx = await startHost(t, [p], pub.kp, { secrets: mapSecrets(KEYS), userConfig: () => ({ providers }) });
  await fx.host.complete('probe', ask({ key: 'A_KEY' }), none);
  assert.deepEqual(proxy.seen, [`GET ${a.url}`], 'plain http in absolute form, to the proxy');
  assert.deepEqual(a.seen, [KEYS.A_KEY], 'and on to the endpoint');
  await fx.host.complete(fx.host.providerInstance('second', 'probe'), ask({ key: 'B_KEY' }), none);
  assert.deepEqual([proxy.seen.length, b.seen], [1, [KEYS.B_KEY]], 'the other endpoint goes direct');
  // The grant still holds through the proxy: it decides the target, not the proxy.
  await assert.rejects(fx.host.complete('probe', ask({ key: 'A_KEY', url: b.url }), none), /plugin probe may not connect/);
  assert.equal(proxy.seen.length, 1);
  // A name this machine cannot resolve is the proxy's to resolve (behind a proxy, outside names often are).
  providers.outside = { baseUrl: 'http://api.example.invalid:8080/v1', proxy: proxy.url };
  await fx.host.complete(fx.host.providerInstance('outside', 'probe'), ask({}), none).catch(() => {}); // the proxy answers 502
  assert.equal(proxy.seen[1], 'GET http://api.example.invalid:8080/v1');
});

test('https through a proxy: a CONNECT tunnel, TLS verified end to end with the target; a refused CONNECT is an error naming it', { skip: haveOpenssl ? false : 'openssl is not installed' }, async (t) => {
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const p = probe(pub.kp);
  t.after(p.cleanup);
  const cert = selfSignedCert();
  t.after(cert.cleanup);
  const seen: string[] = [];
  const server = createHttpsServer({ cert: readFileSync(cert.cert), key: readFileSync(cert.key) }, (req, res) => {
    seen.push(String(req.headers['x-key']));
    res.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => server.close(resolve).closeAllConnections()));
  const url = `https://127.0.0.1:${(server.address() as { port: number }).port}/`;
  const proxy = await startHttpProxy();
  t.after(proxy.close);
  const providers: Record<string, ProviderConfig> = { probe: { baseUrl: url, apiKey: { secret: 'A_KEY' }, proxy: proxy.url } };
  const fx = await startHost(t, [p], pub.kp, { secrets: mapSecrets(KEYS), userConfig: () => ({ providers }) });

  await assert.rejects(fx.host.complete('probe', ask({ key: 'A_KEY' }), none), /SELF_SIGNED/, 'a certificate the target cannot prove is refused, tunnel or not');
  assert.deepEqual([proxy.seen, seen], [[`CONNECT 127.0.0.1:${new URL(url).port}`], []]);

  const defaults = getCACertificates('default');
  setDefaultCACertificates([...defaults, readFileSync(cert.cert, 'utf8')]);
  t.after(() => setDefaultCACertificates(defaults));
  await fx.host.complete('probe', ask({ key: 'A_KEY' }), none);
  assert.deepEqual(seen, [KEYS.A_KEY], 'the request went through the tunnel');

  proxy.refuseConnect = 403;
  await assert.rejects(fx.host.complete('probe', ask({ key: 'A_KEY' }), none), new RegExp(`proxy 127\\.0\\.0\\.1:\\d+ answered CONNECT 127\\.0\\.0\\.1:${new URL(url).port} with 403`));
  assert.equal(proxy.seen.length, 3);
});

test('a "${NAME}" key reads the environment only; {"secret": NAME} the store, though both hold the name', async (t) => {
  const NAME = 'CARAPACE_TEST_BOTH_KEY';
  process.env[NAME] = 'env-value-51d0';
  t.after(() => delete process.env[NAME]);
  const { fx, a, b } = await twoEndpoints(t, { secrets: mapSecrets({ [NAME]: 'store-value-9a7e' }) }, { probe: `\${${NAME}}`, second: { secret: NAME } });
  await fx.host.complete('probe', ask({ key: NAME }), none);
  await fx.host.complete(fx.host.providerInstance('second', 'probe'), ask({ key: NAME }), none);
  assert.deepEqual([a.seen, b.seen], [['env-value-51d0'], ['store-value-9a7e']]);

  delete process.env[NAME];
  await assert.rejects(fx.host.complete('probe', ask({ key: NAME }), none), /CARAPACE_TEST_BOTH_KEY/, 'unset in the environment: an error, not the stored value');
  assert.deepEqual(a.seen, ['env-value-51d0']);
});
