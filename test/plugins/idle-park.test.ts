// A plugin without calls for a while is parked — its isolate, its worker thread,
// the sandbox process once empty — and the next call starts it again; plugins with
// work of their own (an interval here), channels and calls in flight are left alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makePlugin, throwawayPublisher } from '../helpers/plugins.ts';
import { startHost, stateOf } from '../helpers/plugin-host.ts';
import { MemoryBroker } from '../helpers/memory-broker.ts';

const ctx = { agentId: 'main', sessionKey: 's' };
const tools = (...names: string[]) => ({ tools: names.map((name) => ({ name, description: name, input: { type: 'object' } })) });
const IDLE_MS = 300;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('an idle isolate plugin is parked, the empty sandbox process exits, and the next call brings both back', async (t) => {
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const p = makePlugin({ 'index.js': `let calls = 0; exports.tools = [{ name: 'count', run: async () => String(++calls) }];` }, { id: 'counter', provides: tools('count') }, pub.kp);
  t.after(p.cleanup);
  const fx = await startHost(t, [p], pub.kp, { idleParkMs: () => IDLE_MS });
  assert.equal((await fx.host.invokeTool('count', {}, ctx)).content, '1');
  assert.equal((await fx.host.invokeTool('count', {}, ctx)).content, '2', 'the same isolate between calls');
  const sandbox = fx.host.sandboxPid!;
  assert.ok(alive(sandbox));
  await fx.waitFor(() => stateOf(fx.host, 'counter') === 'stopped', 'the plugin parked');
  await fx.waitFor(() => fx.host.sandboxPid === undefined && !alive(sandbox), 'the sandbox process gone');
  assert.ok(fx.logs.some((r) => r.msg === 'plugin parked after idle' && r.plugin === 'counter'));
  assert.equal((await fx.host.invokeTool('count', {}, ctx)).content, '1', 'a fresh isolate');
  assert.notEqual(fx.host.sandboxPid, undefined);
  assert.notEqual(fx.host.sandboxPid, sandbox);
  assert.equal(fx.host.status().plugins.find((x) => x.id === 'counter')!.failures, 0, 'parking is not a failure');
  assert.equal(fx.audit.list({ action: 'plugin.crash' }).length, 0);
});

test('an idle worker plugin is parked and started again by the next call', async (t) => {
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const code = `import { threadId } from 'node:worker_threads'; export const tools = [{ name: 'thread', async run() { return String(threadId); } }];`;
  const p = makePlugin({ 'index.js': code }, { id: 'wcount', runtime: 'worker', provides: tools('thread') }, pub.kp);
  t.after(p.cleanup);
  const fx = await startHost(t, [p], pub.kp, { allowWorker: true, idleParkMs: () => IDLE_MS });
  const first = (await fx.host.invokeTool('thread', {}, ctx)).content;
  await fx.waitFor(() => stateOf(fx.host, 'wcount') === 'stopped', 'the worker parked');
  const second = (await fx.host.invokeTool('thread', {}, ctx)).content;
  assert.notEqual(second, first, 'a new thread');
  assert.equal(stateOf(fx.host, 'wcount'), 'running');
});

test('a plugin holding an interval is not parked; a call outlasting the idle time finishes, and parking waits for it', async (t) => {
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const ticker = makePlugin(
    { 'index.js': `let ticks = 0; exports.tools = [{ name: 'tick', run: async () => { await carapace.timers.interval(50, () => { ticks++; }); return 'on'; } }, { name: 'ticks', run: async () => String(ticks) }];` },
    { id: 'ticker', provides: tools('tick', 'ticks') },
    pub.kp,
  );
  const sleeper = makePlugin(
    { 'index.js': `exports.tools = [{ name: 'nap', run: async (i) => { await carapace.timers.sleep(i.ms); return 'rested'; } }];` },
    { id: 'sleeper', provides: tools('nap') },
    pub.kp,
  );
  t.after(ticker.cleanup);
  t.after(sleeper.cleanup);
  const fx = await startHost(t, [ticker, sleeper], pub.kp, { idleParkMs: () => IDLE_MS });
  assert.equal((await fx.host.invokeTool('tick', {}, ctx)).content, 'on');
  // Started after the ticker's last call, so its idle time ends after the ticker's.
  assert.equal((await fx.host.invokeTool('nap', { ms: IDLE_MS * 3 }, ctx)).content, 'rested', 'the call was not cut off');
  await fx.waitFor(() => stateOf(fx.host, 'sleeper') === 'stopped', 'the sleeper parked after its call');
  assert.equal(stateOf(fx.host, 'ticker'), 'running');
  assert.ok(Number((await fx.host.invokeTool('ticks', {}, ctx)).content) > 0, 'its interval still ticks');
});

test('a call arriving while a parked plugin is still stopping gets a new instance that keeps its capabilities', async (t) => {
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const code = `export const tools = [{ name: 'remember', async run() { await carapace.kv.set('seen', true); return 'ok'; } }];`;
  const p = makePlugin({ 'index.js': code }, { id: 'slowstop', runtime: 'worker', provides: tools('remember') }, pub.kp);
  t.after(p.cleanup);
  const { loadWorkerPlugin } = await import('../../core/plugins/worker-runtime.ts');
  let stopping: (() => Promise<void>) | null = null;
  let loads = 0;
  // The first instance's stop takes until the test lets it finish: the new call lands in between.
  const loadWorker: typeof loadWorkerPlugin = async (spec, hostFns) => {
    const inst = await loadWorkerPlugin(spec, hostFns);
    if (++loads > 1) return inst;
    return { ...inst, stop: () => new Promise<void>((resolve) => void (stopping = () => inst.stop().then(resolve))) };
  };
  const fx = await startHost(t, [p], pub.kp, { allowWorker: true, loadWorker, idleParkMs: () => IDLE_MS });
  assert.equal((await fx.host.invokeTool('remember', {}, ctx)).content, 'ok');
  await fx.waitFor(() => stopping !== null, 'the park began');
  assert.equal((await fx.host.invokeTool('remember', {}, ctx)).content, 'ok', 'a new instance serves the call');
  await stopping!();
  await new Promise((r) => setImmediate(r)); // the park's remaining steps run
  assert.equal((await fx.host.invokeTool('remember', {}, ctx)).content, 'ok', 'the old instance stopping took nothing of the new one');
  assert.equal(stateOf(fx.host, 'slowstop'), 'running');
});

test('a subscription a call ends with unsubscribe leaves its plugin free to park (the message tool waits for its reply this way)', async (t) => {
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const code = `exports.tools = [{ name: 'ask', run: async () => { const s = await carapace.bus.subscribe('message.result.r1', () => {}); await s.unsubscribe(); return 'asked'; } }];`;
  const p = makePlugin({ 'index.js': code }, { id: 'asker', provides: tools('ask'), permissions: { bus: { subscribe: ['message.result.*'] } } }, pub.kp);
  t.after(p.cleanup);
  const fx = await startHost(t, [p], pub.kp, { broker: new MemoryBroker(), idleParkMs: () => IDLE_MS });
  assert.equal((await fx.host.invokeTool('ask', {}, ctx)).content, 'asked');
  await fx.waitFor(() => stateOf(fx.host, 'asker') === 'stopped', 'the plugin parked');
});

test('a channel plugin is never parked: it listens for inbound messages between calls', async (t) => {
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const channel = makePlugin(
    { 'index.js': `let sent = 0; async function start() {} async function stop() {} async function send() { return { platformMessageId: String(++sent) }; } export { start, stop, send };` },
    { id: 'listener', kind: 'channel' },
    pub.kp,
  );
  const tool = makePlugin({ 'index.js': `exports.tools = [{ name: 'ping', run: async () => 'pong' }];` }, { id: 'pinger', provides: tools('ping') }, pub.kp);
  t.after(channel.cleanup);
  t.after(tool.cleanup);
  const fx = await startHost(t, [channel, tool], pub.kp, { idleParkMs: () => IDLE_MS });
  const out = { channel: 'listener', chatId: '1', text: 'hi', idempotencyKey: 'k1' };
  assert.equal((await fx.host.channelSend('listener', out)).platformMessageId, '1');
  // The tool's last call comes after the channel's, so its idle time ends later.
  assert.equal((await fx.host.invokeTool('ping', {}, ctx)).content, 'pong');
  await fx.waitFor(() => stateOf(fx.host, 'pinger') === 'stopped', 'the tool parked');
  assert.equal(stateOf(fx.host, 'listener'), 'running');
  assert.equal((await fx.host.channelSend('listener', { ...out, idempotencyKey: 'k2' })).platformMessageId, '2', 'the same instance');
});
