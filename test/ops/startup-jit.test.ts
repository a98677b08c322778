import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { whenBusy } from '../../core/gateway/startup-jit.ts';

const MODULE = fileURLToPath(new URL('../../core/gateway/startup-jit.ts', import.meta.url));

// In a child process: V8's natives syntax asks for the top tier at once (no waiting
// on its heuristics) and tells which tier a function then runs in. One function
// literal, while the optimizing tiers are deferred and again after they are back,
// as start-up code that later runs hot in real traffic.
const PROBE = `
import { deferOptimizingJit, restoreOptimizingJit, whenOptimizingJitRestored } from ${JSON.stringify(MODULE)};
const tier = new Function('f', 'return %ActiveTierIsTurbofan(f) ? "turbofan" : %ActiveTierIsMaglev(f) ? "maglev" : %ActiveTierIsSparkplug(f) ? "sparkplug" : "ignition"');
const optimize = new Function('f', 'a', '%PrepareFunctionForOptimization(f); f(a); f(a); %OptimizeFunctionOnNextCall(f); f(a);');
const make = () => function hot(a) { let s = 0; for (let i = 0; i < a.length; i++) s += a[i] * 2; return s; };
const tierReached = (f) => (optimize(f, [1, 2, 3]), tier(f));
const deferred = deferOptimizingJit(process.execArgv.filter((a) => a !== '--allow-natives-syntax'), process.env.PROBE_NODE_OPTIONS ?? '');
let told = 0;
whenOptimizingJitRestored(() => told++);
const during = tierReached(make());
restoreOptimizingJit();
restoreOptimizingJit();
console.log(JSON.stringify({ deferred, told, during, after: tierReached(make()) }));
`;

function probe(opts: { flags?: string[]; nodeOptions?: string } = {}): { deferred: boolean; told: number; during: string; after: string } {
  const out = execFileSync(process.execPath, ['--allow-natives-syntax', ...(opts.flags ?? []), '--input-type=module', '-e', PROBE], {
    env: { ...process.env, PROBE_NODE_OPTIONS: opts.nodeOptions ?? '' },
    encoding: 'utf8',
  });
  return JSON.parse(out);
}

test('start-up code is not optimized; once the optimizing tiers are back (said once), hot code reaches TurboFan', () => {
  assert.deepEqual(probe(), { deferred: true, told: 1, during: 'ignition', after: 'turbofan' });
});

test('tiers the user chose are left alone, whether as node flags or in NODE_OPTIONS', () => {
  assert.deepEqual(probe({ flags: ['--no-turbofan'] }), { deferred: false, told: 0, during: 'ignition', after: 'ignition' });
  assert.deepEqual(probe({ nodeOptions: '--max-opt=2' }), { deferred: false, told: 0, during: 'turbofan', after: 'turbofan' });
});

// whenBusy measures this process's CPU: the busy case burns it in slices (the
// sampler needs the event loop), the idle case waits on timers only. The share is
// low enough for a loaded machine to give a spinning process.
const FAST = { windowMs: 200, sampleMs: 25, share: 0.2 };
const cpuMs = () => (process.cpuUsage().user + process.cpuUsage().system) / 1000;

test('sustained CPU use across a window counts as busy, once', async (t) => {
  let calls = 0;
  const watch = whenBusy(() => calls++, FAST);
  t.after(watch.stop);
  const start = cpuMs();
  while (calls === 0 && cpuMs() - start < 10_000) {
    const until = cpuMs() + 20;
    while (cpuMs() < until);
    await delay(1);
  }
  assert.equal(calls, 1, 'busy within 10 s of CPU');
  await delay(FAST.windowMs * 3);
  assert.equal(calls, 1, 'once');
});

test('an idle process is not busy, and a short burst inside an idle window is not sustained work', async (t) => {
  let calls = 0;
  const watch = whenBusy(() => calls++, FAST);
  t.after(watch.stop);
  await delay(FAST.windowMs * 2);
  const until = cpuMs() + FAST.windowMs * FAST.share * 0.4;
  while (cpuMs() < until);
  await delay(FAST.windowMs * 3);
  assert.equal(calls, 0);
});
