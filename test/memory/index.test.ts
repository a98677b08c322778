import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { memoryFixture, countingEmbedder, dailyName, FILLER } from './helpers.ts';
import { createLocalEmbedder } from '../../plugins/memory/hybrid/embedders/local.ts';

const FACT = 'Alice told me she is severely allergic to peanuts and always carries an EpiPen.';

function dailyNote(title: string, entries: string[]): string {
  return `# ${title}\n\n` + entries.map((e, i) => `## ${String(9 + i).padStart(2, '0')}:00\n\n${e}\n`).join('\n');
}

function linesOf(path: string, start: number, end: number): string {
  return readFileSync(path, 'utf8').split('\n').slice(start - 1, end).join('\n');
}

function seed(f: ReturnType<typeof memoryFixture>): string {
  const day = dailyName(3);
  f.write(day, dailyNote(day, [FILLER[0], FILLER[1], FACT, FILLER[2]]));
  f.write(dailyName(1), dailyNote('yesterday', [FILLER[3], FILLER[4]]));
  f.write('MEMORY.md', '# Memory\n\n## People\n\n- Bob prefers tea over coffee.\n\n## Work\n\n' + FILLER[5] + '\n');
  return day;
}

test('a fact in a daily note is found through BM25 by a paraphrased question, with file and line range', async (t) => {
  const f = memoryFixture();
  t.after(f.cleanup);
  const day = seed(f);
  const idx = f.open({ embedder: null });
  const res = await idx.search('Is Alice okay eating peanut butter?', { k: 3 });
  assert.equal(res.mode, 'text');
  const top = res.hits[0];
  assert.equal(top.path, day);
  assert.ok(top.textScore > 0);
  assert.ok(top.startLine >= 1 && top.endLine >= top.startLine);
  assert.match(linesOf(join(f.workspace, top.path), top.startLine, top.endLine), /allergic to peanuts/, 'the cited lines hold the fact');
});

test('the vector side alone finds a fact when no query word matches the text (misspelt, inflected)', async (t) => {
  const f = memoryFixture();
  t.after(f.cleanup);
  const day = seed(f);
  const idx = f.open({ hybrid: { vectorWeight: 1, textWeight: 0 } });
  const res = await idx.search('allergy alise', { k: 3 });
  assert.equal(res.mode, 'hybrid');
  const top = res.hits[0];
  assert.equal(top.path, day);
  assert.equal(top.textScore, 0, 'BM25 matched nothing: the hit came from vectors');
  assert.ok(top.vectorScore! > 0);
  assert.match(linesOf(join(f.workspace, top.path), top.startLine, top.endLine), /allergic to peanuts/);
});

test('editing one file re-embeds only its changed chunk and leaves other files untouched', async (t) => {
  const f = memoryFixture();
  t.after(f.cleanup);
  const day = seed(f);
  const emb = countingEmbedder();
  const idx = f.open({ embedder: emb });
  const first = await idx.sync();
  assert.equal(first.docs.added, 3);
  const otherIds = idx.database.prepare("SELECT id FROM chunks WHERE doc_id != ? ORDER BY id").pluck().all(day);
  emb.inputs.length = 0;

  f.write(day, dailyNote(day, [FILLER[0], FILLER[1], FACT.replace('an EpiPen', 'two EpiPens'), FILLER[2]]));
  const second = await idx.sync();
  assert.deepEqual(second.docs, { added: 0, updated: 1, removed: 0, unchanged: 2 });
  assert.equal(second.chunks.inserted, 1);
  assert.equal(second.chunks.deleted, 1);
  assert.ok(second.chunks.kept >= 3);
  assert.equal(emb.inputs.length, 1, 'one chunk embedded');
  assert.match(emb.inputs[0], /two EpiPens/);
  assert.deepEqual(idx.database.prepare("SELECT id FROM chunks WHERE doc_id != ? ORDER BY id").pluck().all(day), otherIds);

  const third = await idx.sync();
  assert.equal(third.docs.unchanged, 3);
  assert.equal(third.embedded, 0);
});

test('deleting a file removes its chunks, text rows and vectors', async (t) => {
  const f = memoryFixture();
  t.after(f.cleanup);
  const day = seed(f);
  const idx = f.open();
  await idx.sync();
  assert.equal((await idx.search('peanuts EpiPen')).hits[0].path, day);
  rmSync(join(f.workspace, day));
  const report = await idx.sync();
  assert.equal(report.docs.removed, 1);
  const db = idx.database;
  assert.equal(db.prepare('SELECT count(*) FROM chunks WHERE doc_id = ?').pluck().get(day), 0);
  const total = db.prepare('SELECT count(*) FROM chunks').pluck().get();
  assert.equal(db.prepare('SELECT count(*) FROM chunks_fts').pluck().get(), total);
  assert.equal(db.prepare('SELECT count(*) FROM chunks_vec').pluck().get(), total);
  assert.ok((await idx.search('peanuts EpiPen')).hits.every((h) => h.path !== day));
});

test('a new embedder replaces every vector, and switching back is served from the cache', async (t) => {
  const f = memoryFixture();
  t.after(f.cleanup);
  seed(f);
  const a = f.open({ embedder: createLocalEmbedder({ dims: 512 }) });
  await a.sync();
  const chunks = a.status().chunks;
  await a.close();

  const b = f.open({ embedder: countingEmbedder(createLocalEmbedder({ dims: 64 })) });
  const report = await b.sync();
  assert.deepEqual(report.reembedded, { from: 'local:hash-ngram-v2:512', to: 'local:hash-ngram-v2:64' });
  assert.equal(report.embedded, chunks);
  const s = b.status();
  assert.equal(s.embedder.dims, 64);
  assert.equal(s.vectors, chunks);
  assert.equal(s.pendingVectors, 0);
  assert.equal((await b.search('allergy alise', { k: 1 })).mode, 'hybrid');
  await b.close();

  const back = f.open({ embedder: countingEmbedder(createLocalEmbedder({ dims: 512 })) });
  const again = await back.sync();
  assert.ok(again.reembedded);
  assert.equal(again.embedded, 0);
  assert.equal(again.cacheHits, chunks);
});

test('a file that is not a database is detected at open and rebuilt from the workspace', async (t) => {
  const f = memoryFixture();
  t.after(f.cleanup);
  seed(f);
  const idx = f.open();
  await idx.sync();
  const chunks = idx.status().chunks;
  await idx.close();
  rmSync(f.dbPath + '-wal', { force: true });
  rmSync(f.dbPath + '-shm', { force: true });
  writeFileSync(f.dbPath, Buffer.alloc(8192, 0x5a));
  const again = f.open();
  assert.equal(again.opened.kind, 'recreated');
  const report = await again.sync();
  assert.ok(report.rebuilt);
  assert.equal(again.status().chunks, chunks);
  assert.equal(again.status().state, 'complete');
});

test('an index left "building" by a dead process is not served: the next search rebuilds it first', async (t) => {
  const f = memoryFixture();
  t.after(f.cleanup);
  const day = seed(f);
  const idx = f.open();
  await idx.sync();
  await idx.close();
  // What a crash leaves: the marker says building, some rows are missing.
  const raw = new Database(f.dbPath);
  raw.prepare("UPDATE meta SET value = 'building' WHERE key = 'state'").run();
  raw.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES ('builder_pid', '999999999')").run();
  raw.prepare('DELETE FROM chunks WHERE doc_id = ?').run(day);
  raw.close();
  const again = f.open();
  const res = await again.search('peanuts EpiPen');
  assert.equal(res.hits[0].path, day);
  assert.equal(again.status().state, 'complete');
});

test('session transcripts are indexed only when opted in, and forget removes them', async (t) => {
  const f = memoryFixture();
  t.after(f.cleanup);
  seed(f);
  const off = f.open();
  assert.deepEqual(await off.indexDoc({ id: 'main:webchat:1', path: 'sessions/main-webchat-1.md', text: 'user: my locker code is 4417' }), { chunks: 0 });
  await off.close();
  const on = f.open({ sessions: true });
  assert.equal((await on.indexDoc({ id: 'main:webchat:1', path: 'sessions/main-webchat-1.md', text: 'user: my locker code is 4417' })).chunks, 1);
  const hit = (await on.search('locker code')).hits[0];
  assert.equal(hit.path, 'sessions/main-webchat-1.md');
  assert.equal(hit.source, 'session');
  await on.sync(); // a workspace sync must not drop pushed documents
  assert.equal((await on.search('locker code')).hits[0]?.path, 'sessions/main-webchat-1.md');
  assert.deepEqual(await on.forget('main:webchat:1'), { removed: true });
  assert.ok((await on.search('locker code')).hits.every((h) => h.source !== 'session'));
});

test('results are diverse: one note repeated in several files does not fill the top k', async (t) => {
  const f = memoryFixture();
  t.after(f.cleanup);
  const dup = 'The wifi password for the cabin is on the fridge magnet.';
  for (let i = 1; i <= 5; i++) f.write(dailyName(i), dailyNote('d', [dup]));
  f.write('MEMORY.md', '# Memory\n\n## Cabin\n\nThe router for the cabin sits in the hall closet.\n');
  f.write(dailyName(6), dailyNote('d', ['Bought a new magnet for the fridge door.']));
  const idx = f.open();
  const res = await idx.search('cabin wifi password fridge magnet', { k: 3 });
  assert.equal(res.hits.length, 3);
  const copies = res.hits.filter((h) => h.snippet.includes(dup));
  assert.equal(copies.length, 1, JSON.stringify(res.hits.map((h) => h.path)));
});

test('the watcher re-indexes an edited note without an explicit sync', async (t) => {
  const f = memoryFixture();
  t.after(f.cleanup);
  seed(f);
  const idx = f.open();
  await idx.sync();
  idx.watch(50);
  f.write(dailyName(0), '# today\n\nThe plumber comes on Tuesday at nine.\n');
  const deadline = Date.now() + 10_000;
  let found = 0;
  while (Date.now() < deadline && !found) {
    await new Promise((r) => setTimeout(r, 50));
    found = idx.database.prepare("SELECT count(*) FROM chunks WHERE text LIKE '%plumber%'").pluck().get() as number;
  }
  assert.equal(found, 1);
});
