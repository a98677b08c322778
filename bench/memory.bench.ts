// memory: index 100,000 generated chunks through the real pipeline (files → chunker →
// local embedder → FTS5 + sqlite-vec in one SQLite file), then hybrid queries at k=10.
// Baseline in the same run: brute-force cosine over the same vectors in one Float32Array.
// Dimensions are shrunk to 128 (default 512) so the 100k build fits the 60 s budget on
// 2 cores; the vec0 scan cost is linear in dims.
import { mkdtempSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryIndex, embedInput } from '../plugins/memory/hybrid/memory-index.ts';
import { createLocalEmbedder, localVector } from '../plugins/memory/hybrid/embedders/local.ts';
import { blobVec } from '../plugins/memory/hybrid/store.ts';
import { makeReport, percentile, MB } from './lib.ts';

const CHUNKS = Number(process.env.MEMORY_BENCH_CHUNKS ?? 100_000);
const DIMS = 128;
const PER_FILE = 100;
const QUERIES = 200;
const K = 10;
const report = makeReport();

// Deterministic pseudo-random text over a Zipf-ish vocabulary, so BM25 sees realistic term statistics.
let seed = 42;
const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
const syll = ['ka', 'lo', 'mi', 'ne', 'ru', 'sa', 'ti', 'vo', 'ze', 'pa', 'dor', 'len', 'mar', 'quin', 'bel', 'tor'];
const vocab = Array.from({ length: 8000 }, () => Array.from({ length: 2 + Math.floor(rnd() * 3) }, () => syll[Math.floor(rnd() * syll.length)]).join(''));
const word = () => vocab[Math.floor(vocab.length * Math.pow(rnd(), 2.2))];
const sentence = (n: number) => Array.from({ length: n }, word).join(' ');

const base = mkdtempSync(join(tmpdir(), 'carapace-memory-bench-'));
try {
  const ws = join(base, 'workspace');
  mkdirSync(join(ws, 'memory'), { recursive: true });
  const files = Math.ceil(CHUNKS / PER_FILE);
  for (let f = 0; f < files; f++) {
    const d = new Date(Date.UTC(2020, 0, 1) + f * 86_400_000).toISOString().slice(0, 10);
    const parts = [`# ${d}`];
    for (let s = 0; s < PER_FILE && f * PER_FILE + s < CHUNKS; s++) parts.push(`## n${s}\n\n${sentence(28)}.`);
    writeFileSync(join(ws, 'memory', `${d}.md`), parts.join('\n\n') + '\n');
  }

  const idx = new MemoryIndex({ workspace: ws, dbPath: join(base, 'index.sqlite'), embedder: createLocalEmbedder({ dims: DIMS }), commitEveryDocs: 100 });
  let t0 = performance.now();
  const sync = await idx.sync();
  const indexMs = performance.now() - t0;
  const chunks = idx.status().chunks;
  if (chunks !== CHUNKS) throw new Error(`expected ${CHUNKS} chunks, indexed ${chunks}`);
  idx.database.pragma('wal_checkpoint(TRUNCATE)');

  // Baseline data: the same vectors, in one Float32Array.
  const rows = idx.database.prepare('SELECT c.id, e.vec FROM chunks c JOIN embed_cache e ON e.hash = c.hash').all() as { id: number; vec: Buffer }[];
  const flat = new Float32Array(rows.length * DIMS);
  rows.forEach((r, i) => flat.set(blobVec(r.vec), i * DIMS));
  t0 = performance.now();
  const texts = idx.database.prepare('SELECT heading, text FROM chunks').all() as { heading: string; text: string }[];
  const plain = new Float32Array(texts.length * DIMS);
  texts.forEach((r, i) => plain.set(localVector(embedInput(r.heading, r.text), DIMS), i * DIMS));
  const embedOnlyMs = performance.now() - t0;

  const queries = Array.from({ length: QUERIES }, () => sentence(3));
  for (const q of queries.slice(0, 10)) await idx.search(q, { k: K }); // warm caches
  const hybrid: number[] = [];
  for (const q of queries) {
    t0 = performance.now();
    const res = await idx.search(q, { k: K });
    hybrid.push(performance.now() - t0);
    if (res.mode !== 'hybrid') throw new Error('expected hybrid mode');
  }
  const brute: number[] = [];
  const top = new Float32Array(K);
  for (const q of queries) {
    t0 = performance.now();
    const v = localVector(q, DIMS);
    top.fill(-Infinity);
    for (let i = 0, n = rows.length; i < n; i++) {
      let s = 0;
      const off = i * DIMS;
      for (let j = 0; j < DIMS; j++) s += flat[off + j] * v[j];
      if (s > top[K - 1]) {
        let p = K - 1;
        while (p > 0 && top[p - 1] < s) {
          top[p] = top[p - 1];
          p--;
        }
        top[p] = s;
      }
    }
    brute.push(performance.now() - t0);
  }
  const dbBytes = statSync(idx.dbPath).size;
  await idx.close();

  report({ bench: 'memory', metric: 'index_100k_s', value: indexMs / 1000, unit: 's', baseline: embedOnlyMs / 1000, samples: chunks });
  report({ bench: 'memory', metric: 'index_chunks_per_s', value: chunks / (indexMs / 1000), unit: 'chunks/s', baseline: chunks / (embedOnlyMs / 1000) });
  report({ bench: 'memory', metric: 'hybrid_query_p50_k10', value: percentile(hybrid, 50), unit: 'ms', baseline: percentile(brute, 50), samples: QUERIES });
  report({ bench: 'memory', metric: 'hybrid_query_p95_k10', value: percentile(hybrid, 95), unit: 'ms', baseline: percentile(brute, 95), samples: QUERIES });
  report({ bench: 'memory', metric: 'index_size', value: dbBytes / MB, unit: 'MB', baseline: flat.byteLength / MB });
  process.stderr.write(`memory bench: ${chunks} chunks, ${DIMS} dims, ${sync.docs.added} files; baseline index = embedding only, baseline query = brute-force Float32Array cosine, baseline size = raw vectors\n`);
} finally {
  rmSync(base, { recursive: true, force: true });
}
