import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { enableCompileCache, getCompileCacheDir } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stripTypes } from '../../core/plugins/strip-types.ts';

// What worker plugin threads receive instead of TypeScript (the stripper stays out of them).
const cacheRoot = mkdtempSync(join(tmpdir(), 'carapace-strip-'));
enableCompileCache(cacheRoot);
after(() => rmSync(cacheRoot, { recursive: true, force: true }));
const cacheFile = (code: string) => join(getCompileCacheDir()!, 'stripped', `${createHash('sha256').update(process.version).update('\0').update(code).digest('hex')}.js`);

test('types are blanked out in place, and the result is kept on disk for the next start', async () => {
  const ts = `export function area(r: number): number {\n  return Math.PI * r * r; // ${Date.now()}\n}\n`;
  const [js] = await stripTypes([ts]);
  assert.equal(js.length, ts.length, 'every line and column where it was');
  assert.doesNotMatch(js, /: number/);
  assert.equal(new Function('return ' + js.replace('export ', '').trim())()(1), Math.PI);
  assert.equal(readFileSync(cacheFile(ts), 'utf8'), js);
});

test('a damaged cache file is not used: the source is stripped again', async () => {
  const ts = `const greeting: string = 'hello ${Date.now()}';\nexport default greeting;\n`;
  mkdirSync(join(getCompileCacheDir()!, 'stripped'), { recursive: true });
  writeFileSync(cacheFile(ts), 'process.exit(1)');
  const [js] = await stripTypes([ts]);
  assert.match(js, /^const greeting\s+= 'hello/);
  assert.equal(readFileSync(cacheFile(ts), 'utf8'), js);
});

test('a cache file that is more than the source with types blanked out (planted code of the same length) is not used', async () => {
  const ts = `const limit: number = 10; // ${Date.now()}\nexport default limit;\n`;
  const planted = ts.replace('const limit: number = 10;', 'process.exit(7)         ;');
  assert.equal(planted.length, ts.length);
  writeFileSync(cacheFile(ts), planted);
  const [js] = await stripTypes([ts]);
  assert.match(js, /^const limit\s+= 10;/);
});

test('TypeScript the stripper cannot erase is refused with its reason', async () => {
  await assert.rejects(stripTypes([`enum Color { Red } // ${Date.now()}`]), /cannot strip types: .*(enum|TypeScript|not supported)/is);
});
