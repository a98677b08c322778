import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chunkMarkdown, estimateTokens } from '../../plugins/memory/hybrid/chunker.ts';

const doc = [
  '# Notes', '', '## Travel', '', 'Flight to Oslo on the 12th.', 'Hotel near the station.', '',
  '## Code', '', '```ts', 'const x = 1;', '', 'const y = 2;', '```', '',
  '## Long', '', ...Array.from({ length: 60 }, (_, i) => `Line ${i} of a long section about the garden and its many plants.`),
].join('\n');

test('every chunk is exactly the text of its line range, with its heading path', () => {
  const lines = doc.split('\n');
  const chunks = chunkMarkdown(doc, { maxTokens: 200, overlapTokens: 40 });
  assert.ok(chunks.length >= 4);
  for (const c of chunks) {
    assert.equal(c.text, lines.slice(c.startLine - 1, c.endLine).join('\n').trim(), `lines ${c.startLine}-${c.endLine}`);
  }
  assert.equal(chunks[0].heading, 'Notes > Travel');
  assert.ok(chunks.some((c) => c.heading === 'Notes > Code' && c.text.includes('const y = 2;')), 'a fence with a blank line stays whole');
});

test('a long section is split under the budget with overlapping lines, and nothing is lost', () => {
  const chunks = chunkMarkdown(doc, { maxTokens: 200, overlapTokens: 40 }).filter((c) => c.heading === 'Notes > Long');
  assert.ok(chunks.length >= 3);
  for (const c of chunks) assert.ok(estimateTokens(c.text) <= 240, `chunk of ${estimateTokens(c.text)} tokens`);
  for (let i = 1; i < chunks.length; i++) {
    assert.ok(chunks[i].startLine <= chunks[i - 1].endLine, 'consecutive chunks overlap');
    assert.ok(chunks[i].startLine > chunks[i - 1].startLine, 'and still advance');
  }
  const covered = new Set<number>();
  for (const c of chunks) for (let l = c.startLine; l <= c.endLine; l++) covered.add(l);
  const total = doc.split('\n').length;
  assert.equal(chunks[chunks.length - 1].endLine, total);
  for (let l = chunks[0].startLine; l <= total; l++) assert.ok(covered.has(l), `line ${l} is in a chunk`);
});

test('the same paragraph gets the same hash wherever it moves in the file', () => {
  const a = chunkMarkdown('# A\n\nalpha\n\n# B\n\nbeta\n');
  const b = chunkMarkdown('# New\n\nintro\n\n# B\n\nbeta\n');
  assert.equal(a[1].hash, b[1].hash);
  assert.notEqual(a[0].hash, b[0].hash);
});
