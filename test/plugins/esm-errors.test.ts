// ES-module plugin code in the isolate, and the retry hints of a hook's error
// crossing the isolate and worker boundaries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makePlugin, throwawayPublisher } from '../helpers/plugins.ts';
import { startHost, stateOf } from '../helpers/plugin-host.ts';
import { MemoryBroker } from '../helpers/memory-broker.ts';
import { PluginCallError } from '../../core/plugins/runtime.ts';

const ctx = { agentId: 'main', sessionKey: 's' };
const toolDefs = (...names: string[]) => ({ tools: names.map((name) => ({ name, description: name, input: { type: 'object' } })) });

test('an isolate plugin written as an ES module with a trailing export list loads, renamed exports included', async (t) => {
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const code = `const greet = (n) => 'hello ' + n;
const list = [{ name: 'greet', run: async (i) => greet(i.name) }];
export { list as tools, greet };
`;
  const p = makePlugin({ 'index.js': code }, { id: 'esm-tool', provides: toolDefs('greet') }, pub.kp);
  t.after(p.cleanup);
  const fx = await startHost(t, [p], pub.kp);
  assert.equal((await fx.host.invokeTool('greet', { name: 'ada' }, ctx)).content, 'hello ada');
});

test('the bundled tool plugins written with inline exports start in the isolate', async (t) => {
  const fx = await startHost(t, [], null);
  const r = await fx.host.invokeTool('web_fetch', { url: 'http://127.0.0.1:9/' }, ctx);
  assert.doesNotMatch(r.content, /failed to start|Unexpected token/);
  assert.equal(stateOf(fx.host, 'web-fetch'), 'running');
});

test('an isolate plugin that imports a module is refused with the reason', async (t) => {
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const code = `import { readFileSync } from 'node:fs';\nexport const tools = [{ name: 'peek', run: async () => String(readFileSync('/etc/passwd')) }];\n`;
  const p = makePlugin({ 'index.js': code }, { id: 'importer', provides: toolDefs('peek') }, pub.kp);
  t.after(p.cleanup);
  const fx = await startHost(t, [p], pub.kp);
  await assert.rejects(fx.host.invokeTool('peek', {}, ctx), /plugin importer failed to start: .*imports "node:fs"; an isolate plugin is one self-contained file/);
});

const THROWING_CHANNEL = `
async function start() {}
async function stop() {}
async function send(o) {
  const e = new Error('rate limited by the platform');
  e.retryable = o.text === 'permanent' ? false : true;
  e.retryAfterMs = 1500;
  e.status = 429;
  e.token = 'leaky-internal-field';
  e.headers = { authorization: 'Bot x' };
  throw e;
}
export { start, stop, send };
`;

for (const runtime of ['isolate', 'worker'] as const) {
  test(`${runtime}: a send error keeps retryable, retryAfterMs and status and nothing else`, async (t) => {
    const pub = throwawayPublisher();
    t.after(pub.cleanup);
    const p = makePlugin({ 'index.js': THROWING_CHANNEL }, { id: 'thrower', kind: 'channel', runtime, permissions: { bus: { publish: ['channel.inbound'], subscribe: ['channel.outbound.thrower'] } } }, pub.kp);
    t.after(p.cleanup);
    const fx = await startHost(t, [p], pub.kp, { broker: new MemoryBroker(), allowWorker: runtime === 'worker' });
    const out = { channel: 'thrower', chatId: '1', text: 'hi', idempotencyKey: 'k1' };
    const err = await fx.host.channelSend('thrower', out).then(
      () => assert.fail('send should throw'),
      (e: unknown) => e as PluginCallError,
    );
    assert.ok(err instanceof PluginCallError);
    assert.match(err.message, /rate limited by the platform/);
    assert.deepEqual({ retryable: err.retryable, retryAfterMs: err.retryAfterMs, status: err.status }, { retryable: true, retryAfterMs: 1500, status: 429 });
    assert.deepEqual(Object.keys(err).sort(), ['fatal', 'name', 'retryAfterMs', 'retryable', 'status']);
    const err2 = (await fx.host.channelSend('thrower', { ...out, text: 'permanent' }).catch((e: unknown) => e)) as PluginCallError;
    assert.equal(err2.retryable, false);
  });
}

test('retry hints of the wrong type are dropped at the boundary', async (t) => {
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const code = `async function start() {}
async function stop() {}
async function send() { throw Object.assign(new Error('odd'), { retryable: 'yes', retryAfterMs: -5, status: 99999 }); }
export { start, stop, send };`;
  const p = makePlugin({ 'index.js': code }, { id: 'oddthrower', kind: 'channel' }, pub.kp);
  t.after(p.cleanup);
  const fx = await startHost(t, [p], pub.kp);
  const err = (await fx.host.channelSend('oddthrower', { channel: 'oddthrower', chatId: '1', text: 'x', idempotencyKey: 'k' }).catch((e: unknown) => e)) as PluginCallError;
  assert.ok(err instanceof PluginCallError);
  assert.deepEqual({ retryable: err.retryable, retryAfterMs: err.retryAfterMs, status: err.status }, { retryable: undefined, retryAfterMs: undefined, status: undefined });
});
