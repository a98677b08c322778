import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { SANDBOX_NODE_FLAGS } from '../../core/plugins/isolate-runtime.ts';
import { REPO_ROOT } from '../../core/plugins/manifest.ts';
import { makePlugin, throwawayPublisher } from '../helpers/plugins.ts';
import { startHost } from '../helpers/plugin-host.ts';

// Plugin code in an isolate must never reach V8's optimizing compilers, the part of
// V8 most exploited bugs have been in. A process with the sandbox's node flags
// (plus natives syntax, to ask V8) runs code in an isolated-vm isolate and asks
// for the top tier at once; the same probe without the flags shows it would get it.
const PROBE = `
const ivm = require(${JSON.stringify(createRequire(import.meta.url).resolve('isolated-vm', { paths: [REPO_ROOT] }))});
const context = new ivm.Isolate({ memoryLimit: 16 }).createContextSync();
process.stdout.write(context.evalSync(\`
  function hot(a) { let s = 0; for (let i = 0; i < a.length; i++) s += a[i] * 2; return s; }
  %PrepareFunctionForOptimization(hot); hot([1, 2]); hot([3, 4]); %OptimizeFunctionOnNextCall(hot); hot([5, 6]);
  %ActiveTierIsTurbofan(hot) ? 'turbofan' : %ActiveTierIsMaglev(hot) ? 'maglev' : %ActiveTierIsSparkplug(hot) ? 'sparkplug' : 'ignition';
\`));
`;

const tierInIsolate = (flags: readonly string[]) => execFileSync(process.execPath, [...flags, '--allow-natives-syntax', '-e', PROBE], { encoding: 'utf8' });

test("plugin code in an isolate runs without V8's optimizing compilers", () => {
  assert.equal(tierInIsolate(['--no-node-snapshot']), 'turbofan', 'the probe sees optimization where it is allowed');
  assert.equal(tierInIsolate(SANDBOX_NODE_FLAGS), 'ignition');
});

test('the sandbox process is started with those flags', async (t) => {
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const p = makePlugin({ 'index.js': `exports.tools = [{ name: 'hi', run: async () => 'hi' }];` }, { id: 'hi', provides: { tools: [{ name: 'hi', description: 'hi', input: { type: 'object' } }] } }, pub.kp);
  const fx = await startHost(t, [p], pub.kp);
  assert.equal((await fx.host.invokeTool('hi', {}, { agentId: 'main', sessionKey: 's' })).content, 'hi');
  const cmdline = readFileSync(`/proc/${fx.host.sandboxPid}/cmdline`, 'utf8').split('\0');
  for (const flag of SANDBOX_NODE_FLAGS) assert.ok(cmdline.includes(flag), `${flag} in ${cmdline.join(' ')}`);
});
