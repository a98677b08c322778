import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair, writeKeyFile } from '../../core/identity/keys.ts';
import { REPO_ROOT } from '../../core/plugins/manifest.ts';
import { packPlugin, PackError } from '../../core/plugins/pack.ts';
import { scaffoldPlugin } from '../../core/plugins/scaffold.ts';
import { runCli } from '../helpers/cli.ts';

// What `carapace plugin init|pack|sign` guarantee an author: a project whose
// types resolve offline, one import-free ES module out, and a signature only
// over what pack built.

function project(t: { after(fn: () => void): void }, kind: 'tool' | 'provider' = 'tool'): string {
  const base = mkdtempSync(join(tmpdir(), 'carapace-pack-'));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  return scaffoldPlugin(kind, 'demo-tool', join(base, 'demo-tool')).dir;
}

test('a scaffolded project type-checks against carapace/plugin, and a type error in it is caught', (t) => {
  const dir = project(t);
  const tsc = join(REPO_ROOT, 'node_modules', '.bin', 'tsc');
  const ok = spawnSync(tsc, ['--noEmit', '-p', dir], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);
  const src = join(dir, 'src', 'index.ts');
  writeFileSync(src, readFileSync(src, 'utf8').replace("return { content: `${words} words`, data: { words } };", 'return { content: words };'));
  const bad = spawnSync(tsc, ['--noEmit', '-p', dir], { encoding: 'utf8' });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stdout, /TS2322: Type 'number' is not assignable to type 'string'/);
});

test('pack writes one ES module whose only export is a trailing export {} and fills files and tools', (t) => {
  const dir = project(t);
  const r = packPlugin(dir);
  const code = readFileSync(join(dir, 'dist', 'index.js'), 'utf8');
  assert.deepEqual(code.match(/^export\b.*$/gm), ['export { tools };']);
  assert.ok(code.trimEnd().endsWith('export { tools };'));
  assert.doesNotMatch(code, /\bimport\b/);
  assert.deepEqual(Object.keys(r.manifest.files), ['index.js']);
  assert.deepEqual(r.manifest.provides?.tools?.map((x) => x.name), ['demo_tool']);
  assert.equal(r.manifest.signature, undefined);
});

test('pack keeps renamed exports of a non-tool plugin', (t) => {
  const dir = project(t, 'provider');
  writeFileSync(join(dir, 'src', 'index.ts'), 'async function listModels(): Promise<string[]> { return []; }\nexport async function complete(): Promise<null> { return null; }\nexport { listModels as models };\n');
  packPlugin(dir);
  assert.match(readFileSync(join(dir, 'dist', 'index.js'), 'utf8'), /export \{ complete, listModels as models \};\n$/);
});

test('pack refuses a source that imports a module at run time', (t) => {
  const dir = project(t);
  const src = join(dir, 'src', 'index.ts');
  writeFileSync(src, "import { readFileSync } from 'node:fs';\n" + readFileSync(src, 'utf8'));
  assert.throws(() => packPlugin(dir), (e: unknown) => e instanceof PackError && /imports a module at run time/.test(e.message));
});

test('pack refuses a second source file instead of silently leaving it out', (t) => {
  const dir = project(t);
  writeFileSync(join(dir, 'src', 'helpers.ts'), 'export const x = 1;\n');
  assert.throws(() => packPlugin(dir), (e: unknown) => e instanceof PackError && /helpers\.ts/.test(e.message));
});

test('sign refuses a dist/ changed after pack', async (t) => {
  const dir = project(t);
  packPlugin(dir);
  const key = join(dir, '..', 'k.json');
  writeKeyFile(key, generateKeyPair());
  writeFileSync(join(dir, 'dist', 'index.js'), readFileSync(join(dir, 'dist', 'index.js'), 'utf8') + '\n// edited\n');
  const r = await runCli(['plugin', 'sign', '--key', key, '--dir', dir]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /does not match the digests/);
  assert.equal(JSON.parse(readFileSync(join(dir, 'dist', 'plugin.json'), 'utf8')).signature, undefined);
});
