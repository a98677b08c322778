// bench/install: `npm ci --omit=dev` into a scratch copy of package.json and the
// lock file; the size of node_modules, per top-level package, and the time.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, rmSync, lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeReport, MB } from './lib.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const report = makeReport();

function du(path: string): number {
  const st = lstatSync(path);
  if (!st.isDirectory()) return st.size;
  let total = 0;
  for (const entry of readdirSync(path)) total += du(join(path, entry));
  return total;
}

const dir = mkdtempSync(join(tmpdir(), 'carapace-bench-install-'));
try {
  copyFileSync(join(root, 'package.json'), join(dir, 'package.json'));
  copyFileSync(join(root, 'package-lock.json'), join(dir, 'package-lock.json'));
  const t0 = performance.now();
  execFileSync('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir, stdio: 'inherit' });
  const seconds = (performance.now() - t0) / 1000;
  const modules = join(dir, 'node_modules');
  report({ bench: 'install', metric: 'node_modules_size', value: du(modules) / MB, unit: 'MB', baseline: null });
  report({ bench: 'install', metric: 'npm_ci_time', value: seconds, unit: 's', baseline: null });
  const sizes = readdirSync(modules)
    .filter((n) => !n.startsWith('.'))
    .flatMap((n) => (n.startsWith('@') ? readdirSync(join(modules, n)).map((s) => `${n}/${s}`) : [n]))
    .map((n) => ({ n, mb: du(join(modules, n)) / MB }))
    .sort((a, b) => b.mb - a.mb);
  for (const { n, mb } of sizes.slice(0, 8)) report({ bench: 'install', metric: `size:${n}`, value: mb, unit: 'MB', baseline: null });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
