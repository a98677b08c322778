// Worker plugins and their bootstrap are TypeScript, but the threads that run them
// get JavaScript: Node's type stripper is a WebAssembly module that costs every
// thread that loads it ~11 MB for as long as the thread lives. Stripping runs in a
// short-lived child process (a thread that ended would leave ~8–18 MB behind in
// this process's allocator); its output is kept by content digest, in memory and
// next to V8's compile cache (a directory only this user can write — bin.js
// creates it), so later starts skip the stripper altogether.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { getCompileCacheDir } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const STRIPPER = fileURLToPath(new URL('./strip-worker.ts', import.meta.url));
const stripped = new Map<string, string>();

export function isTypeScript(name: string): boolean {
  return /\.[cm]?ts$/.test(name);
}

function digest(code: string): string {
  return createHash('sha256').update(process.version).update('\0').update(code).digest('hex');
}

/** The cache directory, if it is this user's alone (a directory others can write could plant code). */
function diskCache(): string | null {
  const root = getCompileCacheDir();
  if (!root) return null;
  try {
    const st = statSync(root);
    if ((process.getuid && st.uid !== process.getuid()) || (st.mode & 0o022) !== 0) return null;
  } catch {
    return null;
  }
  return join(root, 'stripped');
}

/** 'strip' mode only blanks characters out: anything else is a damaged or planted file. */
function strippedFrom(js: string, ts: string): boolean {
  if (js.length !== ts.length) return false;
  for (let i = 0; i < js.length; i++) {
    const c = js.charCodeAt(i);
    if (c !== ts.charCodeAt(i) && c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return false;
  }
  return true;
}

function readCached(dir: string | null, key: string): string | null {
  if (!dir) return null;
  try {
    return readFileSync(join(dir, `${key}.js`), 'utf8');
  } catch {
    return null;
  }
}

function writeCached(dir: string | null, key: string, js: string): void {
  if (!dir) return;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmp = join(dir, `${key}.${process.pid}.tmp`);
    writeFileSync(tmp, js, { mode: 0o600 });
    renameSync(tmp, join(dir, `${key}.js`));
  } catch {
    // no cache: the next start strips again
  }
}

/** The JavaScript of each TypeScript source, in order. */
export async function stripTypes(sources: string[]): Promise<string[]> {
  const dir = diskCache();
  const keys = sources.map(digest);
  const missing: number[] = [];
  keys.forEach((key, i) => {
    const hit = stripped.get(key) ?? readCached(dir, key);
    if (hit === null || !strippedFrom(hit, sources[i])) missing.push(i);
    else stripped.set(key, hit);
  });
  if (missing.length > 0) {
    const out = await stripInChild(missing.map((i) => sources[i]));
    missing.forEach((i, j) => {
      stripped.set(keys[i], out[j]);
      writeCached(dir, keys[i], out[j]);
    });
  }
  return keys.map((key) => stripped.get(key)!);
}

function stripInChild(sources: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, ['--disable-warning=ExperimentalWarning', STRIPPER], { env: {}, maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`cannot strip types: ${stderr.trim() || err.message}`));
      try {
        resolve(JSON.parse(stdout) as string[]);
      } catch {
        reject(new Error('cannot strip types: the stripper printed something other than JSON'));
      }
    });
    child.stdin!.end(JSON.stringify(sources));
  });
}
