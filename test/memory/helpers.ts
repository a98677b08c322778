// A temp workspace + index file for memory tests, and an embedder that counts what it embeds.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { MemoryIndex, type MemoryIndexOptions } from '../../plugins/memory/hybrid/memory-index.ts';
import { createLocalEmbedder } from '../../plugins/memory/hybrid/embedders/local.ts';
import type { Embedder } from '../../plugins/memory/hybrid/embedders/types.ts';

export interface MemoryFixture {
  base: string;
  workspace: string;
  dbPath: string;
  write(rel: string, text: string): void;
  open(opts?: Partial<MemoryIndexOptions>): MemoryIndex;
  cleanup(): void;
}

export function memoryFixture(): MemoryFixture {
  const base = mkdtempSync(join(tmpdir(), 'carapace-memory-'));
  const workspace = join(base, 'workspace');
  mkdirSync(join(workspace, 'memory'), { recursive: true });
  const dbPath = join(base, 'data', 'index.sqlite');
  const opened: MemoryIndex[] = [];
  return {
    base,
    workspace,
    dbPath,
    write(rel, text) {
      mkdirSync(dirname(join(workspace, rel)), { recursive: true });
      writeFileSync(join(workspace, rel), text);
    },
    open(opts = {}) {
      const idx = new MemoryIndex({ workspace, dbPath, embedder: createLocalEmbedder(), ...opts });
      opened.push(idx);
      return idx;
    },
    cleanup() {
      for (const i of opened) i.close().catch(() => {});
      rmSync(base, { recursive: true, force: true });
    },
  };
}

export function countingEmbedder(inner: Embedder = createLocalEmbedder()): Embedder & { inputs: string[] } {
  const inputs: string[] = [];
  return {
    id: inner.id,
    get dims() {
      return inner.dims;
    },
    lexical: inner.lexical,
    inputs,
    async embed(texts) {
      inputs.push(...texts);
      return inner.embed(texts);
    },
  };
}

/** A day's note name for `daysAgo` days before now (local date, like the plugin writes). */
export function dailyName(daysAgo = 0, now = Date.now()): string {
  const d = new Date(now - daysAgo * 86_400_000);
  return `memory/${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}.md`;
}

export const FILLER = [
  'Reviewed the quarterly budget spreadsheet and flagged two travel expenses.',
  'The printer on the third floor jams when printing double sided pages.',
  'Lunch order for Friday: three vegetarian wraps and a large salad.',
  'Renewed the TLS certificate for the staging domain; next renewal in ninety days.',
  'The team retro moved to Thursday afternoon because of the holiday.',
  'Upgraded the laptop fleet to the new operating system release.',
];
