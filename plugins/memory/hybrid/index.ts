// The memory plugin (kind "memory", runtime "worker"): the memory hooks
// index/search/forget, the agent's memory tools, and `flush` for compaction.
//
// The host calls `init(carapace)` once (or injects `globalThis.carapace`). From
// `carapace.config` (MemoryPluginConfig) it reads the embedder setting and the real
// paths behind the fs grants: `workspace` ($WORKSPACE) and `dataDir` ($PLUGIN_DATA).
// better-sqlite3 opens the index file itself, which is why this plugin needs the
// worker runtime; embedding requests go through `carapace.net.fetch`, so the
// host's allowlist and `{{secret:NAME}}` substitution apply.
import { join } from 'node:path';
import type { CapabilityApi, MemoryDoc, MemoryHit } from '../../../core/plugin-api.ts';
import { MemoryIndex } from './memory-index.ts';
import { INDEX_FILE, makeEmbedder, type MemoryPluginConfig } from './config.ts';
import type { HttpPost } from './embedders/openai.ts';
import { createMemoryTools } from './tools.ts';
import { flushFacts, type FlushResult } from './files.ts';

let api: CapabilityApi | null = null;
let opening: Promise<MemoryIndex> | null = null;

function capabilities(): CapabilityApi {
  const c = api ?? (globalThis as { carapace?: CapabilityApi }).carapace;
  if (!c) throw new Error('memory plugin used before init(carapace)');
  return c;
}

function netPost(c: CapabilityApi): HttpPost {
  return async (url, init) => {
    const r = await c.net.fetch(url, { method: 'POST', headers: init.headers, body: init.body, timeoutMs: init.timeoutMs });
    return { status: r.status, body: r.body };
  };
}

function getIndex(): Promise<MemoryIndex> {
  if (!opening) {
    opening = (async () => {
      const c = capabilities();
      const cfg = c.config as MemoryPluginConfig;
      if (!cfg.workspace || !cfg.dataDir) throw new Error('memory plugin config lacks workspace/dataDir (the host resolves $WORKSPACE and $PLUGIN_DATA)');
      const idx = new MemoryIndex({
        workspace: cfg.workspace,
        dbPath: join(cfg.dataDir, INDEX_FILE),
        embedder: makeEmbedder(cfg.embedder, cfg.remote, netPost(c)),
        hybrid: { vectorWeight: cfg.hybrid?.vectorWeight ?? 0.6, textWeight: cfg.hybrid?.textWeight ?? 0.4 },
        sessions: cfg.sessions === true,
        log: c.log,
      });
      idx.watch();
      idx.sync().catch((err) => c.log.warn('initial memory index failed', { error: (err as Error).message }));
      return idx;
    })();
    opening.catch(() => (opening = null));
  }
  return opening;
}

export async function init(carapace: CapabilityApi): Promise<void> {
  api = carapace;
  await getIndex();
}

export async function stop(): Promise<void> {
  const o = opening;
  opening = null;
  if (o) await (await o).close();
}

/** Memory hook: index a pushed document (session transcripts, when memory.sessions is on). */
export async function index(doc: MemoryDoc): Promise<{ chunks: number }> {
  return (await getIndex()).indexDoc({ id: doc.id, path: doc.path, text: doc.text, source: doc.source ?? 'session' });
}

/** Memory hook: hybrid search. Warnings (provider down → text-only) go to the plugin log. */
export async function search(query: string, opts?: { k?: number }): Promise<MemoryHit[]> {
  const res = await (await getIndex()).search(query, opts);
  for (const w of res.warnings) capabilities().log.warn(w);
  return res.hits;
}

/** Memory hook: drop a pushed document by id. */
export async function forget(id: string): Promise<void> {
  await (await getIndex()).forget(id);
}

/**
 * Pre-compaction flush: `flush({facts: string[], sessionKey?})` appends the facts as
 * bullets under "## Flushed before compaction HH:MM (sessionKey)" in today's
 * memory/YYYY-MM-DD.md, skips facts already in today's note, re-indexes, and returns
 * {path, startLine, endLine, written, skipped}.
 */
export async function flush(input: { facts: string[]; sessionKey?: string }): Promise<FlushResult | { path: string; written: 0; skipped: number; startLine: 0; endLine: 0 }> {
  const idx = await getIndex();
  const res = flushFacts(idx.workspace, Date.now(), input);
  if (res.written) {
    idx.markDirty();
    await idx.sync();
  }
  return res;
}

export const tools = createMemoryTools({ index: getIndex });
