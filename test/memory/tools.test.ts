import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { memoryFixture, dailyName } from './helpers.ts';
import { createMemoryTools, type MemoryTool } from '../../plugins/memory/hybrid/tools.ts';
import { flushFacts } from '../../plugins/memory/hybrid/files.ts';
import type { ToolResult } from '../../core/plugin-api.ts';
import { checkToolInput } from '../../core/plugins/tool-input.ts';

const ctx = { agentId: 'main', sessionKey: 'agent:main:main' };

function toolsFor(f: ReturnType<typeof memoryFixture>) {
  const idx = f.open();
  const tools = createMemoryTools({ index: async () => idx });
  // As the kernel calls a tool: its input checked against the declared schema first.
  const call = async (name: string, input: unknown) => {
    const tool = tools.find((t: MemoryTool) => t.name === name)!;
    checkToolInput(name, tool.input, input);
    return (await tool.run(input, ctx)) as ToolResult;
  };
  return { idx, call };
}

test('memory_write to the daily note is found by memory_search with its file:line, and memory_get returns those exact lines', async (t) => {
  const f = memoryFixture();
  t.after(f.cleanup);
  f.write('MEMORY.md', '# Memory\n\nNothing yet.\n');
  const { call } = toolsFor(f);
  const w = await call('memory_write', { target: 'daily', text: 'The landlord said the boiler service is booked for May 3rd.' });
  assert.ok(!w.isError, w.content);
  const written = w.data as { path: string; startLine: number; endLine: number };
  assert.equal(written.path, dailyName(0));

  const s = await call('memory_search', { query: 'when is the boiler serviced' });
  assert.match(s.content, new RegExp(`^${written.path.replace('.', '\\.')}:\\d+-\\d+`, 'm'));
  const hit = (s.data as { hits: { path: string; startLine: number; endLine: number }[] }).hits[0];
  assert.equal(hit.path, written.path);

  const g = await call('memory_get', { path: written.path, from: written.startLine, lines: 1 });
  assert.equal((g.data as { text: string }).text, 'The landlord said the boiler service is booked for May 3rd.');
});

test('memory_write curates MEMORY.md: under a section, and replacing one exact passage', async (t) => {
  const f = memoryFixture();
  t.after(f.cleanup);
  f.write('MEMORY.md', '# Memory\n\n## People\n\n- Bob likes tea.\n\n## Places\n\n- Office in Lyon.\n');
  const { call } = toolsFor(f);
  assert.ok(!(await call('memory_write', { target: 'memory', section: 'People', text: '- Carol is vegan.' })).isError);
  assert.ok(!(await call('memory_write', { target: 'memory', replace: '- Office in Lyon.', text: '- Office in Grenoble since June.' })).isError);
  const text = readFileSync(join(f.workspace, 'MEMORY.md'), 'utf8');
  assert.equal(text, '# Memory\n\n## People\n\n- Bob likes tea.\n- Carol is vegan.\n\n## Places\n\n- Office in Grenoble since June.\n');
  const twice = await call('memory_write', { target: 'memory', replace: 'e', text: 'x' });
  assert.equal(twice.isError, true);
  assert.match(twice.content, /occurs \d+ times/);
});

test('memory_get and memory_write refuse paths outside the memory files, including through symlinks', async (t) => {
  const f = memoryFixture();
  t.after(f.cleanup);
  const outside = join(f.base, 'secret.md');
  writeFileSync(outside, 'api key: sk-live-123\n');
  writeFileSync(join(f.workspace, 'SOUL.md'), 'soul\n');
  symlinkSync(outside, join(f.workspace, 'memory', 'leak.md'));
  const { call, idx } = toolsFor(f);
  for (const path of ['../secret.md', '/etc/passwd', 'memory/../../secret.md', 'SOUL.md', 'memory/./x.md', 'memory\\..\\x.md', 'memory/leak.md']) {
    const r = await call('memory_get', { path });
    assert.equal(r.isError, true, path);
    assert.doesNotMatch(r.content, /sk-live/, path);
  }
  // The symlinked file is not indexed either.
  assert.ok((await idx.search('api key sk-live')).hits.every((h) => !h.snippet.includes('sk-live')));

  // memory/ itself pointing outside: writes must not land there.
  rmSync(join(f.workspace, 'memory'), { recursive: true });
  mkdirSync(join(f.base, 'elsewhere'));
  symlinkSync(join(f.base, 'elsewhere'), join(f.workspace, 'memory'));
  const w = await call('memory_write', { target: 'daily', text: 'hello' });
  assert.equal(w.isError, true);
  assert.match(w.content, /outside the workspace/);
  assert.equal(existsSync(join(f.base, 'elsewhere', dailyName(0).slice('memory/'.length))), false);
});

test('the declared schemas refuse bad input before anything runs, naming the field; what they allow but the tool does not is refused by the tool', async (t) => {
  const f = memoryFixture();
  t.after(f.cleanup);
  const { call } = toolsFor(f);
  await assert.rejects(call('memory_search', { query: '' }), /invalid at "\/query"/);
  await assert.rejects(call('memory_write', { target: 'elsewhere', text: 'x' }), /invalid at "\/target"/);
  await assert.rejects(call('memory_get', { path: 'MEMORY.md', extra: 1 }), /additional properties/);
  await assert.rejects(call('memory_search', { query: 'x', k: 1000 }), /invalid at "\/k"/);
  const r4 = await call('memory_write', { target: 'daily', text: 'x', replace: 'y' });
  assert.equal(r4.isError, true);
  assert.equal(existsSync(join(f.workspace, dailyName(0))), false);
});

test('flush before compaction appends new facts to today\'s note once, skipping ones already there', async (t) => {
  const f = memoryFixture();
  t.after(f.cleanup);
  const now = Date.now();
  const first = flushFacts(f.workspace, now, { facts: ['User moved to Porto.', 'User prefers short answers.'], sessionKey: 'agent:main:main' });
  assert.equal(first.written, 2);
  const again = flushFacts(f.workspace, now, { facts: ['User prefers short answers.', 'User has a cat named Miso.'] });
  assert.equal(again.written, 1);
  assert.equal(again.skipped, 1);
  const text = readFileSync(join(f.workspace, dailyName(0, now)), 'utf8');
  assert.equal(text.match(/User prefers short answers\./g)!.length, 1);
  assert.match(text, /## Flushed before compaction \d\d:\d\d \(agent:main:main\)\n\n- User moved to Porto\./);
  const lines = text.split('\n');
  assert.equal(lines.slice(again.startLine - 1, again.endLine).join('\n').includes('Miso'), true);
});
