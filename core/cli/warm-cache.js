// The first start after an install or an upgrade finds the compile cache (bin.js)
// empty, and Node then strips the kernel's TypeScript in the gateway's own
// process: its type stripper is a WebAssembly module that stays loaded for good,
// ~20 MB more for as long as that gateway runs (measured: idle 92 MB on a cold
// cache, 71 MB on a warm one). So before `start` loads any TypeScript, a
// short-lived child process fills the cache — it strips and compiles every module
// under core/ and plugins/, evaluating none of them — once per set of sources.
// Plain JavaScript, like bin.js: it runs before anything is stripped.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TREES = ['core', 'plugins'];
/** Imported by the child's module graph and by nothing else: linking fails on it, so no module is evaluated. */
const NO_SUCH_EXPORT = 'carapaceCompileOnly';

function sourceFiles() {
  const out = [];
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'node_modules') walk(p);
      } else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
    }
  };
  for (const tree of TREES) walk(join(ROOT, tree));
  return out.sort();
}

/**
 * Fill `cacheDir` for this Node, these flags and these sources unless that was done
 * already. Returns whether the cache was filled now. Never throws: without it the
 * gateway starts the same, only heavier.
 */
export function warmCompileCache(cacheDir, { execArgv = process.execArgv } = {}) {
  try {
    const files = sourceFiles();
    const key = createHash('sha256').update(`${process.version}\0${execArgv.join(' ')}\n`);
    for (const f of files) {
      const s = statSync(f);
      key.update(`${f}\0${s.size}\0${s.mtimeMs}\n`);
    }
    const stamp = `warm-${key.digest('hex').slice(0, 16)}`;
    if (existsSync(join(cacheDir, stamp))) return false;
    const r = spawnSync(process.execPath, [...execArgv, SELF, cacheDir], { stdio: 'ignore', timeout: 120_000 });
    if (r.status !== 0) return false;
    for (const old of readdirSync(cacheDir)) if (old.startsWith('warm-')) rmSync(join(cacheDir, old), { force: true });
    writeFileSync(join(cacheDir, stamp), '');
    return true;
  } catch {
    return false;
  }
}

async function fill(cacheDir) {
  const { enableCompileCache, flushCompileCache } = await import('node:module');
  enableCompileCache(cacheDir);
  // V8 takes code back only under the flags it was compiled with: the same as bin.js.
  const jit = await import('../gateway/startup-jit.ts');
  jit.deferOptimizingJit();
  const graph = sourceFiles().map((f) => `import ${JSON.stringify(pathToFileURL(f).href)};`);
  graph.push(`import { ${NO_SUCH_EXPORT} } from 'node:fs';`);
  try {
    await import(`data:text/javascript,${encodeURIComponent(graph.join('\n'))}`);
  } catch (err) {
    if (!String(err?.message).includes(NO_SUCH_EXPORT)) throw err;
  }
  flushCompileCache();
}

if (process.argv[1] === SELF) await fill(process.argv[2]);
