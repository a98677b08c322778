// The memory index as a library: give it a workspace, a database path and an
// embedder; it keeps the index in step with the files and answers hybrid queries.
// The plugin entry (index.ts) and the CLI (`carapace memory`) are thin shells on this.
import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { createHash } from 'node:crypto';
import { chunkMarkdown, type ChunkOptions } from './chunker.ts';
import { scanWorkspace, type Source, type SourceFile } from './sources.ts';
import {
  openIndexDb, getMeta, setMeta, hasVecTable, createVecTable, dropVecTable, clearIndex, vecBlob, blobVec,
  SCHEMA_VERSION, type Db, type OpenOutcome,
} from './store.ts';
import type { Embedder } from './embedders/types.ts';
import type { Statement } from 'better-sqlite3';
import { rankHybrid, type Candidate, type RankOptions } from './rank.ts';
import { ftsQuery } from './text.ts';

export interface MemoryLog {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}

export interface HybridWeights {
  vectorWeight: number;
  textWeight: number;
}

export interface MemoryIndexOptions {
  workspace: string;
  dbPath: string;
  /** null: text-only (BM25) search. */
  embedder: Embedder | null;
  hybrid?: HybridWeights;
  /** Daily notes and session transcripts lose up to `weight` of their score as they age (half-life in days). */
  recency?: { halfLifeDays: number; weight: number };
  /** MMR trade-off: 1 = pure relevance, lower = more diverse results. */
  mmrLambda?: number;
  chunk?: ChunkOptions;
  /** Accept session transcripts pushed through indexDoc (config memory.sessions). */
  sessions?: boolean;
  now?: () => number;
  log?: MemoryLog;
  /** During a full build, commit every this many documents (an interrupted build is detected by its marker). */
  commitEveryDocs?: number;
  /** After a provider failure, stay text-only this long before trying it again. */
  embedRetryMs?: number;
}

export interface SyncReport {
  docs: { added: number; updated: number; removed: number; unchanged: number };
  chunks: { inserted: number; deleted: number; kept: number };
  /** Vectors computed by the embedder in this sync (cache hits not counted). */
  embedded: number;
  cacheHits: number;
  /** Why the index was rebuilt from scratch, when it was. */
  rebuilt?: string;
  /** Set when the embedder changed: every vector was thrown away and re-made. */
  reembedded?: { from: string; to: string };
  warnings: string[];
}

export interface SearchHit {
  id: string;
  path: string;
  startLine: number;
  endLine: number;
  snippet: string;
  score: number;
  source: Source;
  vectorScore: number | null;
  textScore: number;
}

export interface SearchResult {
  hits: SearchHit[];
  /** `text` when the vector side was unavailable for this query. */
  mode: 'hybrid' | 'text';
  warnings: string[];
}

export interface MemoryStatus {
  dbPath: string;
  workspace: string;
  schemaVersion: number;
  state: 'complete' | 'building' | 'empty';
  embedder: { id: string | null; dims: number | null; lexical: boolean; indexedWith: string | null };
  docs: number;
  chunks: number;
  vectors: number;
  /** Chunks waiting for a vector (provider down, or embedder just changed). */
  pendingVectors: number;
  bySource: Record<string, number>;
  dbBytes: number;
  completedAt: number | null;
  lastError: string | null;
}

export interface PushedDoc {
  id: string;
  path: string;
  text: string;
  source?: Source;
  /** ms since epoch; drives recency for transcripts. */
  ts?: number;
}

export class MemoryBusyError extends Error {
  constructor(pid: number) {
    super(`the memory index is being built by another process (pid ${pid}); try again when it finishes`);
    this.name = 'MemoryBusyError';
  }
}

interface DocRow {
  id: string;
  path: string;
  source: Source;
  hash: string;
  mtime_ms: number | null;
  size: number | null;
  day: number | null;
}

interface ChunkRow {
  id: number;
  hash: string;
  start_line: number;
  end_line: number;
}

interface PreparedDoc {
  id: string;
  path: string;
  source: Source;
  hash: string;
  mtimeMs: number | null;
  size: number | null;
  day: number | null;
  body: string | null;
  /** null: content unchanged, only mtime/size to record. */
  chunks: ReturnType<typeof chunkMarkdown> | null;
}

const DAY = 86_400_000;

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Cosine similarity of a query vector and a stored float32 blob of the same length. */
function cosine(q: Float32Array, blob: Buffer): number {
  // A Float32Array view needs 4-byte alignment; otherwise copy.
  const v = blob.byteOffset % 4 === 0 ? new Float32Array(blob.buffer, blob.byteOffset, blob.byteLength >> 2) : blobVec(blob);
  if (v.length !== q.length) return 0;
  let dot = 0;
  let nq = 0;
  let nv = 0;
  for (let i = 0; i < q.length; i++) {
    dot += q[i] * v[i];
    nq += q[i] * q[i];
    nv += v[i] * v[i];
  }
  return nq > 0 && nv > 0 ? dot / Math.sqrt(nq * nv) : 0;
}

export function embedInput(heading: string, text: string): string {
  return heading ? `${heading}\n${text}` : text;
}

export class MemoryIndex {
  readonly workspace: string;
  readonly dbPath: string;
  readonly opened: OpenOutcome;
  private readonly db: Db;
  private readonly embedder: Embedder | null;
  private readonly opts: MemoryIndexOptions;
  private readonly now: () => number;
  private readonly log: MemoryLog | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private dirty = true;
  private embedDownUntil = 0;
  private lastEmbedError: string | null = null;
  private watcher: FSWatcher | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(opts: MemoryIndexOptions) {
    this.opts = opts;
    this.workspace = opts.workspace;
    this.dbPath = opts.dbPath;
    this.embedder = opts.embedder;
    this.now = opts.now ?? Date.now;
    this.log = opts.log;
    const { db, outcome } = openIndexDb(opts.dbPath);
    this.db = db;
    this.opened = outcome;
    if (outcome.kind === 'recreated') this.log?.warn('memory index was unreadable and has been recreated', { reason: outcome.reason });
  }

  // ------------------------------------------------------------------ indexing

  /** Bring the index in step with the workspace. Serialized: concurrent calls queue. */
  sync(opts: { force?: boolean } = {}): Promise<SyncReport> {
    return this.serial(() => this.doSync(opts.force === true));
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Why the index cannot be trusted as it stands, or null. */
  private staleReason(): string | null {
    const state = getMeta(this.db, 'state');
    if (state === 'building') {
      const pid = Number(getMeta(this.db, 'builder_pid'));
      if (pid && pid !== process.pid && pidAlive(pid)) throw new MemoryBusyError(pid);
      return `a previous build did not finish (builder pid ${pid || '?'} is gone)`;
    }
    if (state !== 'complete') return this.opened.kind === 'recreated' ? this.opened.reason : 'no index yet';
    return null;
  }

  private async doSync(force: boolean): Promise<SyncReport> {
    this.dirty = false;
    const report: SyncReport = {
      docs: { added: 0, updated: 0, removed: 0, unchanged: 0 },
      chunks: { inserted: 0, deleted: 0, kept: 0 },
      embedded: 0,
      cacheHits: 0,
      warnings: [],
    };
    const reason = force ? 'forced (--force)' : this.staleReason();
    const fullBuild = reason !== null;
    if (fullBuild) {
      if (getMeta(this.db, 'state') !== undefined || force) {
        clearIndex(this.db);
        this.stmts.clear();
        this.log?.warn('rebuilding the memory index', { reason });
      }
      if (reason !== 'no index yet') report.rebuilt = reason!;
      this.db.transaction(() => {
        setMeta(this.db, 'state', 'building');
        setMeta(this.db, 'builder_pid', process.pid);
        setMeta(this.db, 'started_at', this.now());
      })();
    }
    this.reconcileEmbedder(report);

    const files = scanWorkspace(this.workspace);
    const known = new Map<string, DocRow>();
    for (const r of this.db.prepare("SELECT id, path, source, hash, mtime_ms, size, day FROM docs WHERE source != 'session'").all() as DocRow[]) known.set(r.id, r);

    const present = new Set(files.map((f) => f.rel));
    const removed = [...known.keys()].filter((id) => !present.has(id));
    const changed: SourceFile[] = [];
    for (const f of files) {
      const k = known.get(f.rel);
      if (k && k.mtime_ms === f.mtimeMs && k.size === f.size) report.docs.unchanged++;
      else changed.push(f);
    }
    if (removed.length) {
      this.db.transaction(() => {
        for (const id of removed) this.deleteDoc(id, report);
      }).immediate();
      report.docs.removed = removed.length;
    }

    const group = fullBuild ? Math.max(1, this.opts.commitEveryDocs ?? 50) : Number.MAX_SAFE_INTEGER;
    for (let i = 0; i < changed.length; i += group) {
      const prepared: PreparedDoc[] = [];
      for (const f of changed.slice(i, i + group)) {
        let text: string;
        try {
          text = readFileSync(f.abs, 'utf8');
        } catch {
          continue; // vanished since the scan; the next sync removes it
        }
        const hash = sha256(text);
        const k = known.get(f.rel);
        const same = k !== undefined && k.hash === hash;
        prepared.push({
          id: f.rel, path: f.rel, source: f.source, hash, mtimeMs: f.mtimeMs, size: f.size, day: f.day, body: null,
          chunks: same ? null : chunkMarkdown(text, this.opts.chunk),
        });
        if (same) report.docs.unchanged++;
        else if (k) report.docs.updated++;
        else report.docs.added++;
      }
      await this.applyDocs(prepared, report);
    }

    await this.embedPending(report);
    this.db.transaction(() => {
      if (fullBuild) {
        setMeta(this.db, 'state', 'complete');
        setMeta(this.db, 'builder_pid', null);
        setMeta(this.db, 'completed_at', this.now());
      }
      setMeta(this.db, 'last_sync_at', this.now());
      // The cache only needs vectors some chunk still has (for this embedder); other embedders' rows stay for a switch back.
      if (this.embedder) this.db.prepare('DELETE FROM embed_cache WHERE embedder = ? AND hash NOT IN (SELECT hash FROM chunks)').run(this.embedder.id);
    })();
    return report;
  }

  /** A different embedder than the one the vectors were made with: drop them all and re-embed. */
  private reconcileEmbedder(report: SyncReport): void {
    if (!this.embedder) return;
    const was = getMeta(this.db, 'embedder');
    if (was === this.embedder.id) return;
    this.db.transaction(() => {
      if (was !== undefined) {
        dropVecTable(this.db);
        this.stmts.clear();
        this.db.exec('UPDATE chunks SET embedded = 0');
        setMeta(this.db, 'dims', null);
        report.reembedded = { from: was, to: this.embedder!.id };
      }
      setMeta(this.db, 'embedder', this.embedder!.id);
    })();
    if (was !== undefined) this.log?.info('memory embedder changed; re-embedding every chunk', { from: was, to: this.embedder.id });
  }

  /** Vectors for these chunk texts: cache first, then the embedder. A failure returns what it has and records why. */
  private async vectorsFor(items: { hash: string; input: string }[], report: SyncReport | null): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    if (!this.embedder || items.length === 0) return out;
    const get = this.db.prepare('SELECT vec FROM embed_cache WHERE embedder = ? AND hash = ?');
    const missing: { hash: string; input: string }[] = [];
    const seen = new Set<string>();
    for (const it of items) {
      if (seen.has(it.hash)) continue;
      seen.add(it.hash);
      const row = get.get(this.embedder.id, it.hash) as { vec: Buffer } | undefined;
      if (row) {
        out.set(it.hash, blobVec(row.vec));
        if (report) report.cacheHits++;
      } else missing.push(it);
    }
    if (missing.length === 0 || this.now() < this.embedDownUntil) return out;
    const put = this.db.prepare('INSERT OR REPLACE INTO embed_cache(embedder, hash, vec) VALUES (?, ?, ?)');
    const BATCH = 256;
    for (let i = 0; i < missing.length; i += BATCH) {
      const part = missing.slice(i, i + BATCH);
      let vecs: Float32Array[];
      try {
        vecs = await this.embedder.embed(part.map((m) => m.input));
      } catch (err) {
        this.embedFailed(err, report);
        break;
      }
      this.db.transaction(() => {
        part.forEach((m, j) => {
          out.set(m.hash, vecs[j]);
          put.run(this.embedder!.id, m.hash, vecBlob(vecs[j]));
        });
      })();
      if (report) report.embedded += part.length;
    }
    return out;
  }

  private embedFailed(err: unknown, report: SyncReport | null): void {
    const msg = (err as Error).message || String(err);
    this.lastEmbedError = msg;
    this.embedDownUntil = this.now() + (this.opts.embedRetryMs ?? 30_000);
    const warning = `embedding provider failed (${msg}); chunks are indexed for text search and get vectors on a later sync`;
    report?.warnings.push(warning);
    this.log?.warn('memory embedding failed; continuing text-only', { error: msg });
  }

  private async applyDocs(prepared: PreparedDoc[], report: SyncReport): Promise<void> {
    // Phase 1 (async): vectors for chunks this doc does not already have.
    const need: { hash: string; input: string }[] = [];
    const oldHashes = this.db.prepare('SELECT hash FROM chunks WHERE doc_id = ?').pluck();
    for (const p of prepared) {
      if (!p.chunks) continue;
      const have = new Set(oldHashes.all(p.id) as string[]);
      for (const c of p.chunks) if (!have.has(c.hash)) need.push({ hash: c.hash, input: embedInput(c.heading, c.text) });
    }
    const vectors = await this.vectorsFor(need, report);
    // Phase 2 (one immediate transaction): the diff is recomputed against what is in the
    // file now, so a second process syncing the same workspace cannot double-insert.
    this.db.transaction(() => {
      for (const p of prepared) this.writeDoc(p, vectors, report);
    }).immediate();
  }

  private writeDoc(p: PreparedDoc, vectors: Map<string, Float32Array>, report: SyncReport): void {
    const db = this.db;
    const current = db.prepare('SELECT hash FROM docs WHERE id = ?').pluck().get(p.id) as string | undefined;
    db.prepare(`INSERT INTO docs(id, path, source, hash, mtime_ms, size, day, body, indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT(id) DO UPDATE SET path=excluded.path, source=excluded.source, hash=excluded.hash, mtime_ms=excluded.mtime_ms,
      size=excluded.size, day=excluded.day, body=excluded.body, indexed_at=excluded.indexed_at`)
      .run(p.id, p.path, p.source, p.hash, p.mtimeMs, p.size, p.day, p.body, this.now());
    if (!p.chunks || current === p.hash) return;
    const old = db.prepare('SELECT id, hash, start_line, end_line FROM chunks WHERE doc_id = ?').all(p.id) as ChunkRow[];
    const pool = new Map<string, ChunkRow[]>();
    for (const o of old) {
      if (!pool.has(o.hash)) pool.set(o.hash, []);
      pool.get(o.hash)!.push(o);
    }
    const moveLines = db.prepare('UPDATE chunks SET start_line = ?, end_line = ?, day = ?, source = ? WHERE id = ?');
    const insChunk = db.prepare('INSERT INTO chunks(doc_id, path, source, start_line, end_line, heading, text, hash, day, embedded) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)');
    const insFts = db.prepare('INSERT INTO chunks_fts(rowid, heading, text) VALUES (?, ?, ?)');
    for (const c of p.chunks) {
      const reuse = pool.get(c.hash)?.shift();
      if (reuse) {
        moveLines.run(c.startLine, c.endLine, p.day, p.source, reuse.id);
        report.chunks.kept++;
        continue;
      }
      const id = Number(insChunk.run(p.id, p.path, p.source, c.startLine, c.endLine, c.heading, c.text, c.hash, p.day).lastInsertRowid);
      insFts.run(BigInt(id), c.heading, c.text);
      const v = vectors.get(c.hash);
      if (v) this.writeVector(id, v);
      report.chunks.inserted++;
    }
    for (const rest of pool.values()) for (const o of rest) this.deleteChunk(o.id, report);
  }

  private writeVector(chunkId: number, v: Float32Array): void {
    const dims = Number(getMeta(this.db, 'dims') ?? 0);
    if (!hasVecTable(this.db) || dims !== v.length) {
      // First vector, or the model started answering with another size: start the vector side over.
      dropVecTable(this.db);
      this.stmts.clear();
      this.db.exec('UPDATE chunks SET embedded = 0');
      createVecTable(this.db, v.length);
      setMeta(this.db, 'dims', v.length);
    }
    this.db.prepare('INSERT OR REPLACE INTO chunks_vec(rowid, embedding) VALUES (?, ?)').run(BigInt(chunkId), vecBlob(v));
    this.db.prepare('UPDATE chunks SET embedded = 1 WHERE id = ?').run(chunkId);
  }

  private deleteChunk(id: number, report: SyncReport | null): void {
    this.db.prepare('DELETE FROM chunks WHERE id = ?').run(id);
    this.db.prepare('DELETE FROM chunks_fts WHERE rowid = ?').run(BigInt(id));
    if (hasVecTable(this.db)) this.db.prepare('DELETE FROM chunks_vec WHERE rowid = ?').run(BigInt(id));
    if (report) report.chunks.deleted++;
  }

  private deleteDoc(id: string, report: SyncReport | null): boolean {
    const ids = this.db.prepare('SELECT id FROM chunks WHERE doc_id = ?').pluck().all(id) as number[];
    for (const c of ids) this.deleteChunk(c, report);
    return this.db.prepare('DELETE FROM docs WHERE id = ?').run(id).changes > 0;
  }

  /** Chunks still without a vector (provider was down, embedder changed): embed them now, in batches. */
  private async embedPending(report: SyncReport): Promise<void> {
    if (!this.embedder || this.now() < this.embedDownUntil) return;
    const BATCH = 512;
    const select = this.db.prepare('SELECT id, hash, heading, text FROM chunks WHERE embedded = 0 AND id > ? ORDER BY id LIMIT ?');
    let after = 0;
    for (;;) {
      const rows = select.all(after, BATCH) as { id: number; hash: string; heading: string; text: string }[];
      if (rows.length === 0) return;
      after = rows[rows.length - 1].id;
      const vectors = await this.vectorsFor(rows.map((r) => ({ hash: r.hash, input: embedInput(r.heading, r.text) })), report);
      this.db.transaction(() => {
        for (const r of rows) {
          const v = vectors.get(r.hash);
          // The row may have been deleted or re-embedded meanwhile by another writer.
          const still = this.db.prepare('SELECT embedded FROM chunks WHERE id = ? AND hash = ?').pluck().get(r.id, r.hash);
          if (v && still === 0) this.writeVector(r.id, v);
        }
      }).immediate();
      if (vectors.size < new Set(rows.map((r) => r.hash)).size) return; // provider failed mid-way
    }
  }

  /** Index a pushed document (a session transcript); `id` is its key for `forget`. */
  indexDoc(doc: PushedDoc): Promise<{ chunks: number }> {
    return this.serial(async () => {
      const source: Source = doc.source ?? 'session';
      if (source === 'session' && !this.opts.sessions) return { chunks: 0 };
      if (source !== 'session') throw new Error('only session transcripts are pushed; workspace memory files are indexed from disk');
      if (getMeta(this.db, 'state') !== 'complete') await this.doSync(false);
      const report = this.emptyReport();
      this.reconcileEmbedder(report);
      const ts = doc.ts ?? this.now();
      const chunks = chunkMarkdown(doc.text, this.opts.chunk);
      await this.applyDocs([{
        id: `session:${doc.id}`, path: doc.path, source, hash: sha256(doc.text), mtimeMs: null, size: doc.text.length,
        day: Math.floor(ts / DAY), body: doc.text, chunks,
      }], report);
      return { chunks: chunks.length };
    });
  }

  /** Remove a pushed document (or a workspace file's entries until it changes again). */
  forget(id: string): Promise<{ removed: boolean }> {
    return this.serial(async () => {
      let removed = false;
      this.db.transaction(() => {
        removed = this.deleteDoc(`session:${id}`, null) || this.deleteDoc(id, null);
      }).immediate();
      return { removed };
    });
  }

  /** A specific file changed (memory_write): re-index now instead of waiting for the watcher. */
  markDirty(): void {
    this.dirty = true;
  }

  private emptyReport(): SyncReport {
    return { docs: { added: 0, updated: 0, removed: 0, unchanged: 0 }, chunks: { inserted: 0, deleted: 0, kept: 0 }, embedded: 0, cacheHits: 0, warnings: [] };
  }

  // ------------------------------------------------------------------ searching

  private stmts = new Map<string, Statement<unknown[], unknown>>();
  /** Prepared once per connection; dropped when the schema changes (vec table recreated). */
  private stmt(sql: string): Statement<unknown[], unknown> {
    let st = this.stmts.get(sql);
    if (!st) this.stmts.set(sql, (st = this.db.prepare(sql)));
    return st;
  }

  async search(query: string, opts: { k?: number; minScore?: number; sources?: Source[] } = {}): Promise<SearchResult> {
    if (this.dirty || getMeta(this.db, 'state') !== 'complete') await this.sync();
    return this.serial(() => this.doSearch(query, opts));
  }

  private async doSearch(query: string, opts: { k?: number; minScore?: number; sources?: Source[] }): Promise<SearchResult> {
    const k = Math.max(1, Math.min(opts.k ?? 10, 50));
    const warnings: string[] = [];
    const pool = Math.max(k * 4, 40);
    const cand = new Map<number, Candidate>();
    const candidate = (id: number): Candidate => {
      let c = cand.get(id);
      if (!c) cand.set(id, (c = { id, text: 0, vector: null }));
      return c;
    };

    const match = ftsQuery(query);
    const bm25 = 'bm25(chunks_fts, 0.5, 1.0)';
    if (match) {
      for (const r of this.stmt(`SELECT rowid AS id, -${bm25} AS s FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY ${bm25} LIMIT ?`).all(match, pool) as { id: number; s: number }[]) {
        candidate(r.id).text = Math.max(r.s, 0);
      }
    }

    let mode: SearchResult['mode'] = 'text';
    const qv = await this.queryVector(query, warnings);
    if (qv) {
      mode = 'hybrid';
      for (const r of this.stmt('SELECT rowid AS id, distance FROM chunks_vec WHERE embedding MATCH ? AND k = ?').all(vecBlob(qv), pool) as { id: number; distance: number }[]) {
        candidate(r.id).vector = Math.max(0, 1 - r.distance);
      }
      // Exact cosine for candidates only BM25 found, from the embedding cache (one
      // B-tree lookup each; a vec0 point lookup costs ~50 µs) for chunks that have their vector.
      const textOnly = [...cand.values()].filter((c) => c.vector === null).map((c) => c.id);
      if (textOnly.length) {
        const rows = this.stmt('SELECT c.id, e.vec FROM chunks c JOIN embed_cache e ON e.embedder = ? AND e.hash = c.hash WHERE c.id IN (SELECT value FROM json_each(?)) AND c.embedded = 1')
          .all(this.embedder!.id, JSON.stringify(textOnly)) as { id: number; vec: Buffer }[];
        for (const r of rows) cand.get(r.id)!.vector = Math.max(0, cosine(qv, r.vec));
      }
      // Candidates only the vectors found keep text 0: when BM25 returned fewer than
      // `pool` rows that is exact (they do not match); otherwise they rank below the
      // pool's last BM25 score, and scoring them exactly would cost a scan per query.
    }
    if (cand.size === 0) return { hits: [], mode, warnings };

    const rows = this.stmt('SELECT id, doc_id, path, source, start_line, end_line, heading, text, day FROM chunks WHERE id IN (SELECT value FROM json_each(?))')
      .all(JSON.stringify([...cand.keys()])) as { id: number; doc_id: string; path: string; source: Source; start_line: number; end_line: number; heading: string; text: string; day: number | null }[];
    const byId = new Map(rows.map((r) => [r.id, r]));
    const wanted = opts.sources ? new Set(opts.sources) : null;
    const list = [...cand.values()].filter((c) => {
      const r = byId.get(c.id);
      return r && (!wanted || wanted.has(r.source));
    });
    const weights = this.opts.hybrid ?? { vectorWeight: 0.6, textWeight: 0.4 };
    const rank: RankOptions = {
      k,
      weights: mode === 'hybrid' ? weights : { vectorWeight: 0, textWeight: 1 },
      today: Math.floor(this.now() / DAY),
      recency: this.opts.recency ?? { halfLifeDays: 30, weight: 0.3 },
      mmrLambda: this.opts.mmrLambda ?? 0.7,
      minScore: opts.minScore ?? 0,
    };
    const ranked = rankHybrid(list, (id) => {
      const r = byId.get(id)!;
      return { docId: r.doc_id, startLine: r.start_line, endLine: r.end_line, text: r.text, day: r.day };
    }, rank);
    const hits = ranked.map((s) => {
      const r = byId.get(s.id)!;
      return {
        id: `${r.doc_id}:${r.start_line}-${r.end_line}`,
        path: r.path,
        startLine: r.start_line,
        endLine: r.end_line,
        snippet: r.text.length > 700 ? r.text.slice(0, 700) + '…' : r.text,
        score: Math.round(s.score * 1000) / 1000,
        source: r.source,
        vectorScore: s.vector === null ? null : Math.round(s.vector * 1000) / 1000,
        textScore: Math.round(s.textNorm * 1000) / 1000,
      };
    });
    return { hits, mode, warnings };
  }

  private async queryVector(query: string, warnings: string[]): Promise<Float32Array | null> {
    if (!this.embedder) return null;
    if (this.now() < this.embedDownUntil) {
      warnings.push(`embedding provider unavailable (${this.lastEmbedError}); results are from text search only`);
      return null;
    }
    if (!hasVecTable(this.db) || getMeta(this.db, 'embedder') !== this.embedder.id) {
      if (this.lastEmbedError) warnings.push(`no vectors yet (${this.lastEmbedError}); results are from text search only`);
      return null;
    }
    try {
      const [v] = await this.embedder.embed([query]);
      if (v.length !== Number(getMeta(this.db, 'dims'))) throw new Error(`query vector has ${v.length} dimensions, index has ${getMeta(this.db, 'dims')}`);
      return v;
    } catch (err) {
      this.embedFailed(err, null);
      warnings.push(`embedding provider failed (${this.lastEmbedError}); results are from text search only`);
      return null;
    }
  }

  // ------------------------------------------------------------------ state

  status(): MemoryStatus {
    const n = (sql: string) => (this.db.prepare(sql).pluck().get() as number) ?? 0;
    const state = getMeta(this.db, 'state');
    const bySource: Record<string, number> = {};
    for (const r of this.db.prepare('SELECT source, count(*) AS c FROM chunks GROUP BY source').all() as { source: string; c: number }[]) bySource[r.source] = r.c;
    let dbBytes = 0;
    for (const suffix of ['', '-wal']) {
      try {
        dbBytes += statSync(this.dbPath + suffix).size;
      } catch {
        // no WAL right now
      }
    }
    const completed = getMeta(this.db, 'completed_at');
    return {
      dbPath: this.dbPath,
      workspace: this.workspace,
      schemaVersion: SCHEMA_VERSION,
      state: state === 'complete' ? 'complete' : state === 'building' ? 'building' : 'empty',
      embedder: {
        id: this.embedder?.id ?? null,
        dims: getMeta(this.db, 'dims') ? Number(getMeta(this.db, 'dims')) : null,
        lexical: this.embedder?.lexical ?? false,
        indexedWith: getMeta(this.db, 'embedder') ?? null,
      },
      docs: n('SELECT count(*) FROM docs'),
      chunks: n('SELECT count(*) FROM chunks'),
      vectors: n('SELECT count(*) FROM chunks WHERE embedded = 1'),
      pendingVectors: this.embedder ? n('SELECT count(*) FROM chunks WHERE embedded = 0') : 0,
      bySource,
      dbBytes,
      completedAt: completed ? Number(completed) : null,
      lastError: this.lastEmbedError,
    };
  }

  /** The raw db, for the bench's bulk loader and the tests' inspections. */
  get database(): Db {
    return this.db;
  }

  /**
   * Watch MEMORY.md and memory/ and re-index shortly after a change. fs.watch is
   * best-effort (network filesystems, inotify limits); searches re-scan anyway.
   */
  watch(debounceMs = 300): void {
    if (this.watcher || this.closed) return;
    try {
      this.watcher = watch(this.workspace, { recursive: true, persistent: false }, (_event, name) => {
        const rel = name ? String(name).replace(/\\/g, '/') : '';
        if (name && rel !== 'MEMORY.md' && rel !== 'memory' && !rel.startsWith('memory/')) return;
        this.dirty = true;
        if (this.debounce) clearTimeout(this.debounce);
        this.debounce = setTimeout(() => {
          this.debounce = null;
          if (!this.closed) this.sync().catch((err) => this.log?.warn('memory re-index failed', { error: (err as Error).message }));
        }, debounceMs);
        this.debounce.unref?.();
      });
      this.watcher.on('error', (err) => this.log?.warn('memory watcher stopped; changes are picked up at search time', { error: err.message }));
    } catch (err) {
      this.log?.warn('cannot watch the workspace; changes are picked up at search time', { error: (err as Error).message });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.watcher?.close();
    if (this.debounce) clearTimeout(this.debounce);
    await this.queue;
    this.db.close();
  }
}
