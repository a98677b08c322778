import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync, writeFileSync, readdirSync, statSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { tools } from '../../plugins/tools/files/index.js';

// A stand-in for the kernel's fs capability that enforces nothing and records
// every call, so these tests show the tool's own refusals.
let ws: string;
let calls: string[];
before(() => {
  ws = mkdtempSync(join(tmpdir(), 'carapace-files-'));
});
after(() => rmSync(ws, { recursive: true, force: true }));
beforeEach(() => {
  calls = [];
  const real = (p: string) => {
    assert.ok(p === '$WORKSPACE' || p.startsWith('$WORKSPACE/'), `tool passed ${p}`);
    return join(ws, p.slice('$WORKSPACE'.length));
  };
  (globalThis as { carapace?: unknown }).carapace = {
    fs: {
      read: async (p: string) => (calls.push(`read ${p}`), readFileSync(real(p), 'utf8')),
      write: async (p: string, d: string) => {
        calls.push(`write ${p}`);
        mkdirSync(dirname(real(p)), { recursive: true });
        writeFileSync(real(p), d);
      },
      list: async (p: string) => (
        calls.push(`list ${p}`),
        readdirSync(real(p)).map((name) => ({ name, type: statSync(join(real(p), name)).isDirectory() ? 'dir' : 'file' }))
      ),
    },
  };
});

const tool = (name: string) => tools.find((t) => t.name === name)!;

test('files_write then files_read round-trips a workspace file', async () => {
  const w = await tool('files_write').run({ path: 'notes/today.md', content: 'hello' });
  assert.equal(w.isError, undefined, w.content);
  assert.equal(readFileSync(join(ws, 'notes/today.md'), 'utf8'), 'hello');
  assert.equal((await tool('files_read').run({ path: './notes//today.md' })).content, 'hello');
});

test('files_list lists a directory with dirs marked', async () => {
  await tool('files_write').run({ path: 'a/b.txt', content: 'x' });
  assert.match((await tool('files_list').run({})).content, /^a\/$/m);
  assert.equal((await tool('files_list').run({ path: 'a' })).content, 'b.txt');
});

test('files_patch replaces a unique occurrence and refuses an ambiguous one', async () => {
  await tool('files_write').run({ path: 'p.txt', content: 'one two two' });
  assert.equal((await tool('files_patch').run({ path: 'p.txt', find: 'one', replace: '1' })).isError, undefined);
  const amb = await tool('files_patch').run({ path: 'p.txt', find: 'two', replace: '2' });
  assert.equal(amb.isError, true);
  assert.match(amb.content, /occurs 2 times/);
  await tool('files_patch').run({ path: 'p.txt', find: 'two', replace: '$&2', all: true });
  assert.equal(readFileSync(join(ws, 'p.txt'), 'utf8'), '1 $&2 $&2');
});

for (const [label, path] of [
  ['a .. segment', '../outside.txt'],
  ['a .. in the middle', 'a/../../outside.txt'],
  ['an absolute path', '/etc/passwd'],
  ['a home path', '~/.ssh/id_ed25519'],
  ['a root name', '$PLUGIN_DATA/x'],
  ['a backslash path', '..\\outside.txt'],
  ['a NUL byte', 'a\0b'],
  ['an empty path', ''],
] as const) {
  test(`files tools refuse ${label} without touching the fs capability`, async () => {
    for (const name of ['files_read', 'files_write', 'files_list', 'files_patch']) {
      const r = await tool(name).run({ path, content: 'x', find: 'a', replace: 'b' });
      assert.equal(r.isError, true, `${name} accepted ${JSON.stringify(path)}`);
      assert.match(r.content, /^refused: /);
    }
    assert.deepEqual(calls, []);
  });
}

test('a failure from the kernel fs capability is reported, not thrown', async () => {
  (globalThis as unknown as { carapace: { fs: { read: unknown } } }).carapace.fs.read = async () => {
    throw new Error('FORBIDDEN: path resolves outside the granted roots');
  };
  const r = await tool('files_read').run({ path: 'link-to-etc/passwd' });
  assert.equal(r.isError, true);
  assert.match(r.content, /outside the granted roots/);
});
