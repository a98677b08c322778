import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import * as sqliteVec from 'sqlite-vec';
import { memoryFixture, dailyName, FILLER } from './helpers.ts';
import { startFakeEmbeddings } from '../helpers/fake-embeddings.ts';
import { createOpenAiEmbedder } from '../../plugins/memory/hybrid/embedders/openai.ts';
import { exited } from '../helpers/cli.ts';

const CHILD = fileURLToPath(new URL('./fixtures/index-child.ts', import.meta.url));

function seedMany(f: ReturnType<typeof memoryFixture>, n: number): void {
  for (let i = 0; i < n; i++) f.write(dailyName(i + 1), `# day ${i}\n\n${FILLER[i % FILLER.length]} Entry number ${i}.\n`);
  f.write('MEMORY.md', '# Memory\n\nThe garage door code is 8812.\n');
}

test('a provider answering 500 leaves search working on text alone, with a warning, and vectors come later', async (t) => {
  const f = memoryFixture();
  const fake = await startFakeEmbeddings();
  t.after(async () => {
    f.cleanup();
    await fake.close();
  });
  seedMany(f, 3);
  fake.mode = 'fail';
  const idx = f.open({ embedder: createOpenAiEmbedder({ baseUrl: fake.url, model: 'emb-32' }), embedRetryMs: 0 });
  const report = await idx.sync();
  assert.match(report.warnings.join('\n'), /HTTP 500/);
  assert.equal(idx.status().pendingVectors, idx.status().chunks);

  const res = await idx.search('garage door code');
  assert.equal(res.mode, 'text');
  assert.match(res.warnings.join('\n'), /text search only/);
  assert.equal(res.hits[0].path, 'MEMORY.md');

  fake.mode = 'ok';
  await idx.sync();
  assert.equal(idx.status().pendingVectors, 0);
  const after = await idx.search('garage door code');
  assert.equal(after.mode, 'hybrid');
  assert.deepEqual(after.warnings, []);
});

test('the OpenAI-compatible embedder batches requests and a model change re-embeds everything', async (t) => {
  const f = memoryFixture();
  const fake = await startFakeEmbeddings();
  t.after(async () => {
    f.cleanup();
    await fake.close();
  });
  seedMany(f, 4);
  const a = f.open({ embedder: createOpenAiEmbedder({ baseUrl: fake.url, model: 'emb-a-32', apiKey: 'sk-test', batchSize: 2 }) });
  await a.sync();
  const chunks = a.status().chunks;
  assert.equal(chunks, 5);
  assert.ok(fake.requests.every((r) => r.inputs.length <= 2 && r.auth === 'Bearer sk-test'));
  assert.equal(fake.requests.reduce((n, r) => n + r.inputs.length, 0), chunks);
  await a.close();

  fake.requests.length = 0;
  const b = f.open({ embedder: createOpenAiEmbedder({ baseUrl: fake.url, model: 'emb-b-48', batchSize: 2 }) });
  const report = await b.sync();
  assert.ok(report.reembedded);
  assert.equal(report.embedded, chunks);
  assert.ok(fake.requests.every((r) => r.model === 'emb-b-48'));
  assert.equal(b.status().embedder.dims, 48);
  const res = await b.search('garage door code');
  assert.equal(res.mode, 'hybrid');
  assert.equal(res.hits[0].path, 'MEMORY.md');
});

test('kill -9 in the middle of a build is detected on the next open and the index is rebuilt', async (t) => {
  const f = memoryFixture();
  const fake = await startFakeEmbeddings();
  const docs = 12;
  seedMany(f, docs - 1);
  fake.stallAfter = 3; // three documents get their vectors and are committed; the fourth hangs
  const child = spawn(process.execPath, [CHILD, f.workspace, f.dbPath, fake.url], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited(child);
    f.cleanup();
    await fake.close();
  });
  const deadline = Date.now() + 30_000;
  while (fake.requests.length < 4 && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 20));
  assert.equal(fake.requests.length, 4, 'the child reached the stalled request');
  const meanwhile = f.open({ embedder: null });
  await assert.rejects(meanwhile.search('garage door code'), /being built by another process \(pid \d+\)/, 'a half-built index is not served');
  await meanwhile.close();
  child.kill('SIGKILL');
  assert.equal((await exited(child)).signal, 'SIGKILL');

  const raw = new Database(f.dbPath, { readonly: true });
  sqliteVec.load(raw);
  const state = raw.prepare("SELECT value FROM meta WHERE key = 'state'").pluck().get();
  const partial = raw.prepare('SELECT count(*) FROM docs').pluck().get() as number;
  raw.close();
  assert.equal(state, 'building');
  assert.ok(partial > 0 && partial < docs, `partial index had ${partial} docs`);

  fake.mode = 'ok';
  fake.stallAfter = null;
  const idx = f.open({ embedder: createOpenAiEmbedder({ baseUrl: fake.url, model: 'emb-32' }) });
  const report = await idx.sync();
  assert.match(report.rebuilt ?? '', /did not finish/);
  const res = await idx.search('garage door code');
  assert.equal(res.hits[0].path, 'MEMORY.md');
  const s = idx.status();
  assert.equal(s.state, 'complete');
  assert.equal(s.docs, docs);
  assert.equal(s.vectors, s.chunks);
  assert.equal(idx.database.prepare('SELECT count(*) FROM chunks_fts').pluck().get(), s.chunks);
});
