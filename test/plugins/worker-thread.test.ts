// First-party worker plugins share one thread (worker-runtime.ts): each still sees
// only its own `carapace`, starts from fresh module state when loaded again, and
// neither a failed load nor a slow call of one stops the others; a thread that is
// really stuck ends with everything in it, and each plugin is told.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadWorkerPlugin } from '../../core/plugins/worker-runtime.ts';
import type { HostFunctions } from '../../core/plugins/host-functions.ts';
import type { LoadSpec, PluginInstance } from '../../core/plugins/runtime.ts';
import { makePlugin, throwawayPublisher } from '../helpers/plugins.ts';
import { startHost } from '../helpers/plugin-host.ts';

const CODE = `
import { threadId } from 'node:worker_threads';
let calls = 0;
export const tools = [
  { name: 'who', async run() {
    calls++;
    // after a timer, still this plugin's carapace
    await new Promise((r) => setTimeout(r, 5));
    return JSON.stringify({ name: carapace.config.name, calls, threadId });
  } },
  { name: 'wait', async run() { await new Promise((r) => setTimeout(r, 5000)); return 'waited'; } },
  { name: 'spin', async run() { for (;;) {} } },
];
`;

const host: HostFunctions = {
  call: async () => null,
  fetchStream: async () => {
    throw new Error('no network in this test');
  },
  holdsOpen: () => false,
  close: () => {},
};

function pluginDir(t: { after(fn: () => void): void }, files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'carapace-wthread-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function spec(dir: string, name: string, thread: string | null, files: Record<string, string> = { 'index.js': CODE }, callTimeoutMs = 3000): LoadSpec {
  return {
    id: name,
    runtime: 'worker',
    entry: 'index.js',
    files: new Map(Object.entries(files).map(([k, v]) => [k, Buffer.from(v)])),
    dir,
    memoryMb: 64,
    callTimeoutMs,
    cpuMsPerCall: callTimeoutMs,
    maxPending: 16,
    config: { name },
    thread: thread ? { name: thread, memoryMb: 128 } : undefined,
  };
}

async function who(p: PluginInstance): Promise<{ name: string; calls: number; threadId: number }> {
  return JSON.parse(((await p.call('tool', ['who', {}, {}])) as { content: string }).content);
}

function exitOf(p: PluginInstance): Promise<string> {
  return new Promise((resolve) => p.onExit(resolve));
}

test('plugins sharing a thread each see their own carapace and module state, and one loaded again starts afresh', async (t) => {
  const dir = pluginDir(t, { 'index.js': CODE });
  // Two instances of the same plugin folder (as two endpoints of one provider plugin are).
  const a = await loadWorkerPlugin(spec(dir, 'a', 'shared-1'), host);
  const b = await loadWorkerPlugin(spec(dir, 'b', 'shared-1'), host);
  t.after(() => Promise.all([a.stop(), b.stop()]));
  const [a1, b1] = await Promise.all([who(a), who(b)]);
  assert.equal(a1.name, 'a');
  assert.equal(b1.name, 'b');
  assert.equal(b1.threadId, a1.threadId, 'one thread');
  assert.equal(b1.calls, 1, "b's module state is not a's");
  assert.equal((await who(a)).calls, 2);

  await a.stop();
  const again = await loadWorkerPlugin(spec(dir, 'a', 'shared-1'), host);
  t.after(() => again.stop());
  const a2 = await who(again);
  assert.deepEqual(a2, { name: 'a', calls: 1, threadId: a1.threadId }, 'same thread, fresh module state');

  const alone = await loadWorkerPlugin(spec(dir, 'c', null), host);
  t.after(() => alone.stop());
  assert.notEqual((await who(alone)).threadId, a1.threadId, 'no thread name: a thread of its own');
});

test('a plugin that fails to load is refused with its reason, and the plugins already in the thread go on', async (t) => {
  const dir = pluginDir(t, { 'index.js': CODE });
  const a = await loadWorkerPlugin(spec(dir, 'a', 'shared-2'), host);
  t.after(() => a.stop());
  const before = await who(a);
  const badDir = pluginDir(t, { 'index.js': `throw new Error('broken at load');` });
  await assert.rejects(loadWorkerPlugin(spec(badDir, 'bad', 'shared-2', { 'index.js': `throw new Error('broken at load');` }), host), /broken at load/);
  // On disk, but not among the verified files.
  const unlisted = pluginDir(t, { 'index.js': `import './extra.js';`, 'extra.js': `export {};` });
  await assert.rejects(loadWorkerPlugin(spec(unlisted, 'unlisted', 'shared-2', { 'index.js': `import './extra.js';` }), host), /extra\.js is not listed/);
  const after = await who(a);
  assert.equal(after.threadId, before.threadId);
  assert.equal(after.calls, 2);
});

test('a call that outlives its timeout stops only its plugin while the thread still answers', async (t) => {
  const dir = pluginDir(t, { 'index.js': CODE });
  const slow = await loadWorkerPlugin(spec(dir, 'slow', 'shared-3', undefined, 300), host);
  const other = await loadWorkerPlugin(spec(dir, 'other', 'shared-3'), host);
  t.after(() => Promise.all([slow.stop(), other.stop()]));
  const tid = (await who(other)).threadId;
  const exited = exitOf(slow);
  await assert.rejects(slow.call('tool', ['wait', {}, {}]), /stopped: call timeout after 300 ms/);
  assert.match(await exited, /call timeout/);
  // Past the ping's deadline: the thread answered, so it was left running.
  await new Promise((r) => setTimeout(r, 2500));
  assert.deepEqual(await who(other), { name: 'other', calls: 2, threadId: tid });
});

test('a thread stuck in a loop is ended with every plugin in it, and each is told why', async (t) => {
  const dir = pluginDir(t, { 'index.js': CODE });
  const spinner = await loadWorkerPlugin(spec(dir, 'spinner', 'shared-4', undefined, 300), host);
  const bystander = await loadWorkerPlugin(spec(dir, 'bystander', 'shared-4'), host);
  t.after(() => Promise.all([spinner.stop(), bystander.stop()]));
  const tid = (await who(bystander)).threadId;
  const told = exitOf(bystander);
  await assert.rejects(spinner.call('tool', ['spin', {}, {}]), /call timeout/);
  assert.match(await told, /stuck: plugin spinner's call did not return/);
  await assert.rejects(who(bystander), /not running/);
  const next = await loadWorkerPlugin(spec(dir, 'bystander', 'shared-4'), host);
  t.after(() => next.stop());
  assert.notEqual((await who(next)).threadId, tid, 'the next load starts a new thread');
});

test('the host puts first-party worker plugins in one thread and gives an allowed third-party one its own', async (t) => {
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const p = makePlugin({ 'index.js': `export const tools = [{ name: 'third', run: async () => 'x' }];` }, { id: 'thirdparty', runtime: 'worker', provides: { tools: [{ name: 'third', description: 'third', input: { type: 'object' } }] } }, pub.kp);
  t.after(p.cleanup);
  const specs = new Map<string, LoadSpec>();
  const fx = await startHost(t, [p], pub.kp, {
    allowWorker: true,
    loadWorker: async (s) => {
      specs.set(s.id, s);
      return { runtime: 'worker', call: async () => ({ content: 'stub' }), deliver: async () => {}, stop: async () => {}, onExit: () => {} };
    },
  });
  const ctx = { sessionKey: 'agent:main:main', agentId: 'main' };
  await fx.host.invokeTool('memory_search', { query: 'x' }, ctx);
  await fx.host.invokeTool('third', {}, ctx);
  const memory = specs.get('hybrid');
  assert.ok(memory, 'the bundled memory plugin was loaded');
  assert.equal(memory.thread?.name, 'first-party');
  // Its budget is the first-party worker plugins' limits together: at least its own and a provider's (256 MB).
  assert.ok(memory.thread.memoryMb >= memory.memoryMb + 256, `shared budget ${memory.thread.memoryMb} MB`);
  assert.equal(specs.get('thirdparty')?.thread, undefined);
});
