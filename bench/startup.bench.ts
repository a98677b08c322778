// bench/startup: spawn `carapace start` on a fresh home → first /healthz 200, and
// the RSS of the whole process tree 10 s after ready; baseline: a bare Node http
// server measured the same way in the same run.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { GATEWAY_NODE_FLAGS } from '../core/gateway/node-flags.ts';
import { makeReport, percentile, treeRss, treePss, MB } from './lib.ts';

const BIN = fileURLToPath(new URL('../core/cli/bin.js', import.meta.url));
const RUNS = Number(process.env.BENCH_STARTUP_RUNS ?? 10);
const SETTLE_MS = 10_000;
const report = makeReport();

const BASELINE_SRC = `require('http').createServer((q, s) => s.end('ok')).listen(0, '127.0.0.1', function () { console.log('PORT ' + this.address().port); });`;

interface Started {
  child: ChildProcess;
  readyMs: number;
  home: string;
  cleanup(): void;
}

async function loadBundledPlugins(home: string): Promise<void> {
  const { connectOwner } = await import('../core/cli/connect.ts');
  const { homePaths } = await import('../core/home.ts');
  const client = await connectOwner(homePaths(home));
  if (!client) throw new Error('the gateway did not write run/gateway.json');
  try {
    await client.request('tools.invoke', { tool: 'clock_now', input: {} });
    await client.request('tools.invoke', { tool: 'memory_search', input: { query: 'warm up' } });
  } finally {
    client.close();
  }
}

async function waitHealthy(url: string, child: ChildProcess): Promise<void> {
  for (;;) {
    if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode}`);
    const ok = await fetch(url).then((r) => r.ok, () => false);
    if (ok) return;
    await delay(2);
  }
}

/** Spawn, learn the port from the first line that names it, poll until 200. */
async function start(kind: 'gateway' | 'baseline'): Promise<Started> {
  const base = mkdtempSync(join(tmpdir(), 'carapace-bench-startup-'));
  const t0 = performance.now();
  const child =
    kind === 'gateway'
      ? spawn(process.execPath, [...GATEWAY_NODE_FLAGS, BIN, 'start', '--home', join(base, 'home'), '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ANTHROPIC_API_KEY: '', OPENAI_API_KEY: '' } })
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
const [gw, bare] = [await start('gateway'), await start('baseline')];
await delay(SETTLE_MS);
report({ bench: 'startup', metric: 'idle_rss_tree', value: treeRss(gw.child.pid!) / MB, unit: 'MB', baseline: treeRss(bare.child.pid!) / MB });
await loadBundledPlugins(gw.home);
await delay(SETTLE_MS);
report({ bench: 'startup', metric: 'rss_tree_plugins_loaded', value: treeRss(gw.child.pid!) / MB, unit: 'MB', baseline: treeRss(bare.child.pid!) / MB });
const [gwPss, barePss] = [treePss(gw.child.pid!), treePss(bare.child.pid!)];
if (gwPss !== null && barePss !== null) report({ bench: 'startup', metric: 'pss_tree_plugins_loaded', value: gwPss / MB, unit: 'MB', baseline: barePss / MB });
gw.cleanup();
bare.cleanup();
