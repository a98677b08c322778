// sandbox: one tool call into an isolate plugin and back (JSON in/out), the same
// into a worker plugin, against a direct in-process call and a bare isolated-vm
// `apply` measured in the same run (bench.md).
import ivm from 'isolated-vm';
import { makeReport, percentile } from './lib.ts';
import { makePlugin, throwawayPublisher } from '../test/helpers/plugins.ts';
import { startHost } from '../test/helpers/plugin-host.ts';

const report = makeReport();
const N = Number(process.env.BENCH_N ?? 3000);
const WARM = 300;
const input = { text: 'hello', n: 42, tags: ['a', 'b'] };

async function measure(fn: () => Promise<unknown> | unknown): Promise<number[]> {
  for (let i = 0; i < WARM; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < N; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    out.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  return out;
}

const run = async (i: { text: string; n: number }) => ({ content: JSON.stringify({ echo: i.text, n: i.n + 1 }) });
const direct = await measure(() => run(JSON.parse(JSON.stringify(input))));

const isolate = new ivm.Isolate({ memoryLimit: 32 });
const ctx = isolate.createContextSync();
const fn = ctx.evalSync(`(function (json) { const i = JSON.parse(json); return JSON.stringify({ content: JSON.stringify({ echo: i.text, n: i.n + 1 }) }); })`, { reference: true }) as ivm.Reference;
const bare = await measure(() => fn.apply(undefined, [JSON.stringify(input)], { result: { copy: true } }));

const CODE_ISO = `exports.tools = [{ name: 'echo', async run(i) { return { content: JSON.stringify({ echo: i.text, n: i.n + 1 }) }; } }];`;
const CODE_WORKER = `export const tools = [{ name: 'echo', async run(i) { return { content: JSON.stringify({ echo: i.text, n: i.n + 1 }) }; } }];`;
const provides = { tools: [{ name: 'echo', description: 'echo', input: { type: 'object' } }] };
const pub = throwawayPublisher();
const pIso = makePlugin({ 'index.js': CODE_ISO }, { id: 'bench-iso', provides }, pub.kp);
const pWork = makePlugin({ 'index.js': CODE_WORKER }, { id: 'bench-worker', runtime: 'worker', provides: { tools: [{ ...provides.tools[0], name: 'echo_w' }] } }, pub.kp);
const afters: (() => unknown)[] = [];
const fx = await startHost({ after: (f) => afters.push(f) }, [pIso, pWork], pub.kp, { allowWorker: true });
const ctxTool = { agentId: 'main', sessionKey: 'bench' };
const iso = await measure(() => fx.host.invokeTool('echo', input, ctxTool));
const work = await measure(() => fx.host.invokeTool('echo_w', input, ctxTool));

const d50 = percentile(direct, 50);
const b50 = percentile(bare, 50);
for (const [metric, samples, baseline] of [
  ['direct_call_p50', direct, null],
  ['bare_ivm_apply_p50', bare, d50],
  ['isolate_tool_call_p50', iso, d50],
  ['isolate_tool_call_p99', iso, percentile(direct, 99)],
  ['worker_tool_call_p50', work, d50],
  ['worker_tool_call_p99', work, percentile(direct, 99)],
] as const) {
  const p = metric.endsWith('p99') ? 99 : 50;
  report({ bench: 'sandbox', metric, value: percentile(samples as number[], p), unit: 'us', baseline, samples: N });
}
report({ bench: 'sandbox', metric: 'isolate_overhead_p50', value: percentile(iso, 50) - d50, unit: 'us', baseline: b50 - d50 });
report({ bench: 'sandbox', metric: 'worker_overhead_p50', value: percentile(work, 50) - d50, unit: 'us', baseline: null });

fn.release();
isolate.dispose();
for (const f of afters.reverse()) await f();
pIso.cleanup();
pWork.cleanup();
pub.cleanup();
