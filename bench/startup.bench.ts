// bench/startup: spawn `carapace start` on a fresh home → first /healthz 200, and
// the RSS of the whole process tree 10 s after ready — idle, with the bundled
// plugins loaded, in use (an agent turn through the bundled Anthropic provider,
// against a loopback fake, that used every bundled tool), and once its idle
// plugins are parked; baseline: a bare Node http server measured the same way in
// the same run. `--peer openclaw` also installs the public openclaw package into a
// scratch directory and measures its gateway the same way (spawn → /health 200,
// tree RSS 10 s after ready), against ours.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { GATEWAY_ENV, GATEWAY_NODE_FLAGS } from '../core/gateway/node-flags.ts';
import { makeReport, percentile, treeRss, treePss, treeResidentUnique, MB } from './lib.ts';
import { startFakeAnthropic } from '../test/helpers/fake-anthropic.ts';

const BIN = fileURLToPath(new URL('../core/cli/bin.js', import.meta.url));
const RUNS = Number(process.env.BENCH_STARTUP_RUNS ?? 10);
const PEER_RUNS = 3; // OpenClaw takes seconds per start
const { peer } = parseArgs({ options: { peer: { type: 'string' } } }).values;
if (peer !== undefined && peer !== 'openclaw') throw new Error(`--peer: only openclaw is known, not "${peer}"`);
const SETTLE_MS = 10_000;
const report = makeReport();
// The gateway finds its provider in the environment (config.md's defaults); nothing
// loads it until the in-use step.
const fakeProvider = await startFakeAnthropic();

const BASELINE_SRC = `require('http').createServer((q, s) => s.end('ok')).listen(0, '127.0.0.1', function () { console.log('PORT ' + this.address().port); });`;

interface Started {
  child: ChildProcess;
  readyMs: number;
  home: string;
  cleanup(): void;
}

async function withOwner(home: string, use: (client: import('../core/client/client.ts').BusClient) => Promise<void>): Promise<void> {
  const { connectOwner } = await import('../core/cli/connect.ts');
  const { homePaths } = await import('../core/home.ts');
  const client = await connectOwner(homePaths(home));
  if (!client) throw new Error('the gateway did not write run/gateway.json');
  try {
    await use(client);
  } finally {
    client.close();
  }
}

const loadBundledPlugins = (home: string) =>
  withOwner(home, async (client) => {
    await client.request('tools.invoke', { tool: 'clock_now', input: {} });
    await client.request('tools.invoke', { tool: 'memory_search', input: { query: 'warm up' } });
  });

/** One agent turn through the provider worker whose model calls every bundled tool once. */
const useAgent = (home: string) =>
  withOwner(home, async (client) => {
    fakeProvider.push(
      {
        toolCalls: [
          { name: 'clock_now', input: { timezone: 'Europe/Berlin' } },
          { name: 'files_list', input: { path: '.' } },
          { name: 'web_fetch', input: { url: 'http://127.0.0.1:9/' } },
          { name: 'message', input: { channel: 'webchat', to: 'nobody', text: 'hello' } },
          { name: 'memory_search', input: { query: 'hello' } },
        ],
        stopReason: 'tool_use',
      },
      { text: 'Done.' },
    );
    const before = fakeProvider.requests.length;
    await client.request('chat.send', { text: 'Use every tool once.', idempotencyKey: `bench-${Date.now()}` });
    const deadline = performance.now() + 30_000;
    while (fakeProvider.requests.length < before + 2 || fakeProvider.pending() > 0) {
      if (performance.now() > deadline) throw new Error('the agent turn did not reach the provider twice');
      await delay(50);
    }
  });

async function waitHealthy(url: string, child: ChildProcess): Promise<void> {
  for (;;) {
    if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode}`);
    const ok = await fetch(url).then((r) => r.ok, () => false);
    if (ok) return;
    await delay(2);
  }
}

/** Spawn, learn the port from the first line that names it, poll until 200. */
async function start(kind: 'gateway' | 'baseline', env: Record<string, string> = {}): Promise<Started> {
  const base = mkdtempSync(join(tmpdir(), 'carapace-bench-startup-'));
  const t0 = performance.now();
  const child =
    kind === 'gateway'
      ? spawn(process.execPath, [...GATEWAY_NODE_FLAGS, BIN, 'start', '--home', join(base, 'home'), '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...GATEWAY_ENV, ANTHROPIC_API_KEY: 'sk-ant-bench-not-a-key', ANTHROPIC_BASE_URL: fakeProvider.url, OPENAI_API_KEY: '', OPENAI_BASE_URL: '', CARAPACE_MODEL: '', ...env } })
      : spawn(process.execPath, ['-e', BASELINE_SRC], { stdio: ['ignore', 'pipe', 'pipe'] });
  const port = await new Promise<number>((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d;
      const m = /"url":"http:\/\/127\.0\.0\.1:(\d+)"|PORT (\d+)/.exec(buf);
      if (m) resolve(Number(m[1] ?? m[2]));
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${kind} exited ${code}: ${buf}`)));
  });
  await waitHealthy(kind === 'gateway' ? `http://127.0.0.1:${port}/healthz` : `http://127.0.0.1:${port}/`, child);
  const readyMs = performance.now() - t0;
  return {
    child,
    readyMs,
    home: join(base, 'home'),
    cleanup: () => {
      child.kill('SIGKILL');
      rmSync(base, { recursive: true, force: true });
    },
  };
}

async function readyTimes(kind: 'gateway' | 'baseline'): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const s = await start(kind);
    times.push(s.readyMs);
    s.child.kill('SIGTERM');
    await new Promise((r) => s.child.once('exit', r));
    s.cleanup();
  }
  return times;
}

const gatewayTimes = await readyTimes('gateway');
const baselineTimes = await readyTimes('baseline');
for (const p of [50, 95]) {
  report({ bench: 'startup', metric: `ready_p${p}`, value: percentile(gatewayTimes, p), unit: 'ms', baseline: percentile(baselineTimes, p), samples: RUNS });
}

// Both settle side by side so machine noise hits them alike. The gateway then has
// its bundled plugins loaded: a tool call into an isolate (starts the sandbox
// host process) and a memory call (starts the memory plugin's worker), as a
// gateway in use would.
// Beside them, a first start after an install: on an empty compile cache, which
// `start` fills in a child process before it loads the kernel (core/cli/warm-cache.js).
const emptyCache = mkdtempSync(join(tmpdir(), 'carapace-bench-cache-'));
const first = await start('gateway', { CARAPACE_COMPILE_CACHE: emptyCache });
const [gw, bare] = [await start('gateway'), await start('baseline')];
await delay(SETTLE_MS);
const idleRss = treeRss(gw.child.pid!) / MB;
report({ bench: 'startup', metric: 'idle_rss_tree', value: idleRss, unit: 'MB', baseline: treeRss(bare.child.pid!) / MB });
report({ bench: 'startup', metric: 'first_start_ready', value: first.readyMs, unit: 'ms', baseline: percentile(gatewayTimes, 50) });
report({ bench: 'startup', metric: 'first_start_idle_rss_tree', value: treeRss(first.child.pid!) / MB, unit: 'MB', baseline: idleRss });
first.cleanup();
rmSync(emptyCache, { recursive: true, force: true });
await loadBundledPlugins(gw.home);
await delay(SETTLE_MS);
report({ bench: 'startup', metric: 'rss_tree_plugins_loaded', value: treeRss(gw.child.pid!) / MB, unit: 'MB', baseline: treeRss(bare.child.pid!) / MB });
const [gwPss, barePss] = [treePss(gw.child.pid!), treePss(bare.child.pid!)];
if (gwPss !== null && barePss !== null) report({ bench: 'startup', metric: 'pss_tree_plugins_loaded', value: gwPss / MB, unit: 'MB', baseline: barePss / MB });
const [gwUnique, bareUnique] = [treeResidentUnique(gw.child.pid!), treeResidentUnique(bare.child.pid!)];
if (gwUnique !== null && bareUnique !== null) report({ bench: 'startup', metric: 'resident_unique_tree_plugins_loaded', value: gwUnique / MB, unit: 'MB', baseline: bareUnique / MB });
await useAgent(gw.home);
await delay(SETTLE_MS);
report({ bench: 'startup', metric: 'rss_tree_in_use', value: treeRss(gw.child.pid!) / MB, unit: 'MB', baseline: treeRss(bare.child.pid!) / MB });
const [usePss, useUnique] = [treePss(gw.child.pid!), treeResidentUnique(gw.child.pid!)];
if (usePss !== null) report({ bench: 'startup', metric: 'pss_tree_in_use', value: usePss / MB, unit: 'MB', baseline: treePss(bare.child.pid!)! / MB });
if (useUnique !== null) report({ bench: 'startup', metric: 'resident_unique_tree_in_use', value: useUnique / MB, unit: 'MB', baseline: treeResidentUnique(bare.child.pid!)! / MB });
// Between conversations: plugins without calls are parked after gateway.pluginIdleSeconds
// (ten minutes by default; one second here), so one more turn arms the short timers.
await withOwner(gw.home, (client) => client.request('config.set', { path: 'gateway.pluginIdleSeconds', value: 1 }).then(() => {}));
await useAgent(gw.home);
await delay(SETTLE_MS);
report({ bench: 'startup', metric: 'rss_tree_parked', value: treeRss(gw.child.pid!) / MB, unit: 'MB', baseline: treeRss(bare.child.pid!) / MB });
gw.cleanup();
bare.cleanup();
await fakeProvider.close();

if (peer === 'openclaw') await measureOpenclaw({ readyP50: percentile(gatewayTimes, 50), idleRss });

function du(path: string): number {
  const st = lstatSync(path);
  return st.isDirectory() ? readdirSync(path).reduce((sum, e) => sum + du(join(path, e)), 0) : st.size;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
    srv.once('error', reject);
  });
}

/** OpenClaw's gateway on a scratch HOME, unconfigured, loopback; its own children in its process group. */
async function startOpenclaw(dir: string): Promise<{ child: ChildProcess; readyMs: number; stop(): Promise<void> }> {
  const port = await freePort();
  const home = mkdtempSync(join(dir, 'home-'));
  const t0 = performance.now();
  const child = spawn(process.execPath, [join(dir, 'node_modules/openclaw/openclaw.mjs'), 'gateway', 'run', '--allow-unconfigured', '--bind', 'loopback', '--port', String(port)], {
    stdio: 'ignore',
    detached: true,
    env: { ...process.env, HOME: home, ANTHROPIC_API_KEY: '', OPENAI_API_KEY: '' },
  });
  const deadline = t0 + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`openclaw exited with ${child.exitCode}`);
    if (performance.now() > deadline) throw new Error('openclaw did not answer /health within 120 s');
    if (await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.ok, () => false)) break;
    await delay(20);
  }
  const readyMs = performance.now() - t0;
  return {
    child,
    readyMs,
    stop: async () => {
      const exited = new Promise((r) => child.once('exit', r));
      process.kill(-child.pid!, 'SIGKILL');
      await exited;
    },
  };
}

async function measureOpenclaw(ours: { readyP50: number; idleRss: number }): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'carapace-bench-peer-'));
  try {
    execFileSync('npm', ['install', '--prefix', dir, 'openclaw', '--omit=dev', '--no-audit', '--no-fund', '--loglevel=error'], { stdio: 'inherit' });
    const version = (JSON.parse(readFileSync(join(dir, 'node_modules/openclaw/package.json'), 'utf8')) as { version: string }).version;
    process.stderr.write(`peer: openclaw ${version}\n`);
    report({ bench: 'startup', metric: 'peer_openclaw_node_modules', value: du(join(dir, 'node_modules')) / MB, unit: 'MB', baseline: null });
    const times: number[] = [];
    for (let i = 0; i < PEER_RUNS; i++) {
      const oc = await startOpenclaw(dir);
      times.push(oc.readyMs);
      await oc.stop();
    }
    report({ bench: 'startup', metric: 'peer_openclaw_ready_p50', value: percentile(times, 50), unit: 'ms', baseline: ours.readyP50, samples: PEER_RUNS });
    const oc = await startOpenclaw(dir);
    await delay(SETTLE_MS);
    report({ bench: 'startup', metric: 'peer_openclaw_idle_rss_tree', value: treeRss(oc.child.pid!) / MB, unit: 'MB', baseline: ours.idleRss });
    await oc.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
