import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MODULE = fileURLToPath(new URL('../../core/gateway/startup-jit.ts', import.meta.url));

// In a child process: V8's natives syntax asks for the top tier at once (no waiting
// on its heuristics) and tells which tier a function then runs in. One function
// literal, while the optimizing tiers are deferred and again after they are back,
// as start-up code that later runs hot in real traffic.
const PROBE = `
import { deferOptimizingJit } from ${JSON.stringify(MODULE)};
const tier = new Function('f', 'return %ActiveTierIsTurbofan(f) ? "turbofan" : %ActiveTierIsMaglev(f) ? "maglev" : %ActiveTierIsSparkplug(f) ? "sparkplug" : "ignition"');
const optimize = new Function('f', 'a', '%PrepareFunctionForOptimization(f); f(a); f(a); %OptimizeFunctionOnNextCall(f); f(a);');
const make = () => function hot(a) { let s = 0; for (let i = 0; i < a.length; i++) s += a[i] * 2; return s; };
const tierReached = (f) => (optimize(f, [1, 2, 3]), tier(f));
const restore = deferOptimizingJit(process.execArgv.filter((a) => a !== '--allow-natives-syntax'), process.env.PROBE_NODE_OPTIONS ?? '');
const during = tierReached(make());
restore();
console.log(JSON.stringify({ during, after: tierReached(make()) }));
`;

function probe(opts: { flags?: string[]; nodeOptions?: string } = {}): { during: string; after: string } {
  const out = execFileSync(process.execPath, ['--allow-natives-syntax', ...(opts.flags ?? []), '--input-type=module', '-e', PROBE], {
    env: { ...process.env, PROBE_NODE_OPTIONS: opts.nodeOptions ?? '' },
    encoding: 'utf8',
  });
  return JSON.parse(out);
}

test('start-up code is not optimized; once the optimizing tiers are back, hot code reaches TurboFan', () => {
  assert.deepEqual(probe(), { during: 'ignition', after: 'turbofan' });
});

test('tiers the user chose are left alone, whether as node flags or in NODE_OPTIONS', () => {
  assert.deepEqual(probe({ flags: ['--no-turbofan'] }), { during: 'ignition', after: 'ignition' });
  assert.deepEqual(probe({ nodeOptions: '--max-opt=2' }), { during: 'turbofan', after: 'turbofan' });
});
