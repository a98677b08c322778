// The first `start` after an install must not strip TypeScript in the gateway's
// process (Node's stripper then stays loaded for the process's life): bin.js has
// a child process fill the compile cache first (core/cli/warm-cache.js).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { warmCompileCache } from '../../core/cli/warm-cache.js';
import { GATEWAY_NODE_FLAGS } from '../../core/gateway/node-flags.ts';
import { BIN, exited } from '../helpers/cli.ts';
import { tempHome } from '../helpers/home.ts';
import { until } from '../helpers/wait.ts';

const GATEWAY = new URL('../../core/gateway/gateway.ts', import.meta.url).href;
const JIT = new URL('../../core/gateway/startup-jit.ts', import.meta.url).href;

/** Loads what `carapace start` loads, on `cacheDir`, and says whether Node's type stripper was loaded. */
function stripperLoaded(cacheDir: string): boolean {
  const script = `
    const { enableCompileCache } = await import('node:module');
    enableCompileCache(${JSON.stringify(cacheDir)});
    (await import(${JSON.stringify(JIT)})).deferOptimizingJit();
    await import(${JSON.stringify(GATEWAY)});
    console.log(JSON.stringify(process.moduleLoadList.some((m) => m.includes('amaro'))));`;
  return JSON.parse(execFileSync(process.execPath, [...GATEWAY_NODE_FLAGS, '--input-type=module', '-e', script], { encoding: 'utf8' }));
}

test('a warmed compile cache lets the gateway start without stripping TypeScript in its process, and is warmed once', (t) => {
  const cold = mkdtempSync(join(tmpdir(), 'carapace-cc-cold-'));
  const warm = mkdtempSync(join(tmpdir(), 'carapace-cc-warm-'));
  t.after(() => {
    rmSync(cold, { recursive: true, force: true });
    rmSync(warm, { recursive: true, force: true });
  });
  assert.equal(stripperLoaded(cold), true, 'on an empty cache the kernel is stripped in-process');

  assert.equal(warmCompileCache(warm, { execArgv: GATEWAY_NODE_FLAGS }), true, 'filled');
  assert.equal(readdirSync(warm).filter((f) => f.startsWith('warm-')).length, 1, 'one stamp');
  assert.equal(stripperLoaded(warm), false, 'nothing left to strip');
  assert.equal(warmCompileCache(warm, { execArgv: GATEWAY_NODE_FLAGS }), false, 'the same sources and flags are not warmed twice');
  assert.equal(warmCompileCache(warm, { execArgv: [...GATEWAY_NODE_FLAGS, '--stack-size=900'] }), true, 'other flags: warmed again');
  assert.equal(readdirSync(warm).filter((f) => f.startsWith('warm-')).length, 1, 'the older stamp is replaced');
});

test('carapace start warms an empty compile cache before it loads the kernel', async (t) => {
  const cache = mkdtempSync(join(tmpdir(), 'carapace-cc-start-'));
  const home = tempHome('warm');
  t.after(() => {
    rmSync(cache, { recursive: true, force: true });
    home.cleanup();
  });
  const child = spawn(process.execPath, [...GATEWAY_NODE_FLAGS, BIN, 'start', '--port', '0', '--home', home.dir], { stdio: 'ignore', env: { ...process.env, CARAPACE_COMPILE_CACHE: cache } });
  t.after(() => child.kill('SIGKILL'));
  await until('the gateway to be ready', () => existsSync(home.paths.runInfo), 60_000);
  assert.equal(readdirSync(cache).filter((f) => f.startsWith('warm-')).length, 1, 'the cache was warmed for this start');
  child.kill('SIGTERM');
  await exited(child);
});
