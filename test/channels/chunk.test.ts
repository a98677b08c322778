import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chunkText, segments } from '../../core/channels/chunk.ts';
import { adaptMarkdown } from '../../core/channels/markdown.ts';
import { prepareOutbound } from '../../core/channels/outbound.ts';

/** Every fence opened in a chunk is closed in the same chunk. */
function fencesBalanced(chunk: string): boolean {
  let open: string | null = null;
  for (const line of chunk.split('\n')) {
    const m = /^ {0,3}(`{3,}|~{3,})/.exec(line);
    if (!m) continue;
    if (open === null) open = m[1];
    else if (line.trim().startsWith(open) && /^ {0,3}(`{3,}|~{3,})\s*$/.test(line)) open = null;
  }
  return open === null;
}

function seeded(seed: number): () => number {
  return () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

function randomDoc(r: () => number): string {
  const words = ['alpha', 'beta', 'gamma', 'delta', 'a', 'fairly-long-identifier_name', 'x', 'ü', '🙂'];
  const sentence = () => Array.from({ length: 1 + Math.floor(r() * 14) }, () => words[Math.floor(r() * words.length)]).join(' ') + (r() < 0.5 ? '.' : '!');
  const parts: string[] = [];
  for (let i = 0; i < 2 + Math.floor(r() * 8); i++) {
    if (r() < 0.35) {
      const lines = Array.from({ length: 1 + Math.floor(r() * 30) }, (_, j) => `  line_${j}(${'x'.repeat(Math.floor(r() * 40))});`);
      parts.push(['```ts', ...lines, '```'].join('\n'));
    } else parts.push(Array.from({ length: 1 + Math.floor(r() * 6) }, sentence).join(' '));
  }
  return parts.join('\n\n');
}

test('text under the limit is one chunk, unchanged', () => {
  assert.deepEqual(chunkText('hello **world**', 100), ['hello **world**']);
});

test('prose splits on paragraphs before sentences and sentences before words', () => {
  const text = 'First paragraph here.\n\nSecond one. It has two sentences.';
  assert.deepEqual(chunkText(text, 40), ['First paragraph here.', 'Second one. It has two sentences.']);
  assert.deepEqual(chunkText('One sentence here. Another sentence there.', 25), ['One sentence here.', 'Another sentence there.']);
  assert.deepEqual(chunkText('word '.repeat(10).trim(), 12), ['word word', 'word word', 'word word', 'word word', 'word word']);
});

test('a code block that fits the limit moves whole to the next chunk rather than being split', () => {
  const code = '```js\nconst a = 1;\nconst b = 2;\n```';
  const chunks = chunkText(`${'intro text. '.repeat(4).trim()}\n\n${code}`, 50);
  assert.ok(chunks.includes(code), JSON.stringify(chunks));
});

test('a code block longer than the limit is closed and reopened with its language', () => {
  const lines = Array.from({ length: 20 }, (_, i) => `print(${i})`);
  const chunks = chunkText(['```python', ...lines, '```'].join('\n'), 60);
  assert.ok(chunks.length > 1);
  for (const c of chunks) {
    assert.ok(c.length <= 60);
    assert.ok(c.startsWith('```python\n') && c.endsWith('\n```'), c);
  }
  const body = chunks.flatMap((c) => c.split('\n').slice(1, -1));
  assert.deepEqual(body, lines, 'no line lost, none cut');
});

test('chunking never leaves a code fence open in any chunk, over many random documents', () => {
  const r = seeded(42);
  for (let n = 0; n < 300; n++) {
    const doc = randomDoc(r);
    const limit = 80 + Math.floor(r() * 400);
    const chunks = chunkText(doc, limit);
    for (const c of chunks) {
      assert.ok(c.length <= limit, `chunk of ${c.length} > ${limit}`);
      assert.ok(fencesBalanced(c), `unbalanced fence in:\n${c}`);
    }
    // Nothing lost: every code line and every word still appears, in order.
    const strip = (s: string) => s.replace(/^ {0,3}```.*$/gm, '').replace(/\s+/g, '');
    assert.equal(chunks.map(strip).join(''), strip(doc));
  }
});

test('a code block that fits is never split across chunks, over many random documents', () => {
  const r = seeded(7);
  for (let n = 0; n < 200; n++) {
    const doc = randomDoc(r);
    const limit = 200 + Math.floor(r() * 400);
    const chunks = chunkText(doc, limit);
    for (const seg of segments(doc)) {
      if (seg.kind === 'code' && seg.text.length <= limit) assert.ok(chunks.some((c) => c.includes(seg.text)), 'block split');
    }
  }
});

test('a word longer than the limit is cut without breaking an emoji', () => {
  const chunks = chunkText('🙂'.repeat(10), 5);
  assert.ok(chunks.every((c) => c.length <= 5 && !/[\uD800-\uDBFF]$/.test(c)));
  assert.equal(chunks.join(''), '🙂'.repeat(10));
});

test('markdown "none" strips markers but keeps code content and link targets', () => {
  const md = '# Title\n\nSome **bold**, _it_ and `x*y*z`. See [docs](https://e.com/a).\n\n```sh\nls **/*.ts\n```';
  assert.equal(adaptMarkdown(md, 'none'), 'Title\n\nSome bold, it and x*y*z. See docs (https://e.com/a).\n\nls **/*.ts');
});

test('markdown "basic" turns headings bold and leaves code blocks untouched', () => {
  const md = '## Plan\n```\n# not a heading\n```';
  assert.equal(adaptMarkdown(md, 'basic'), '**Plan**\n```\n# not a heading\n```');
  assert.equal(adaptMarkdown(md, 'full'), md);
});

test('a long reply becomes chunk messages with stable derived idempotency keys', () => {
  const msg = { channel: 'irc', chatId: '#c', text: 'one. '.repeat(50).trim(), idempotencyKey: 'run-1:reply', replyTo: 'p9' };
  const a = prepareOutbound(msg, { chunkLimit: 100, markdown: 'none' });
  const b = prepareOutbound(msg, { chunkLimit: 100, markdown: 'none' });
  assert.ok(a.length > 1);
  assert.deepEqual(a.map((m) => m.idempotencyKey), b.map((m) => m.idempotencyKey));
  assert.equal(a[0].idempotencyKey, `run-1:reply#1/${a.length}`);
  assert.equal(a[0].replyTo, 'p9');
  assert.equal(a[1].replyTo, undefined);
});
