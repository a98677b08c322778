// Which workspace files are memory: MEMORY.md (curated, long-term) and memory/**/*.md
// (memory/YYYY-MM-DD.md are daily notes; other files there are curated topics).
import { readdirSync, realpathSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

export type Source = 'memory' | 'daily' | 'session';

export interface SourceFile {
  /** Relative to the workspace, forward slashes: the doc id and the path shown to the model. */
  rel: string;
  abs: string;
  source: Source;
  /** Days since the epoch (UTC) for daily notes: drives recency decay. */
  day: number | null;
  mtimeMs: number;
  size: number;
}

const DAILY = /^(\d{4})-(\d{2})-(\d{2})\.md$/;
const MAX_FILE_BYTES = 4 * 1024 * 1024;

export function dayOfDailyName(name: string): number | null {
  const m = DAILY.exec(name);
  if (!m) return null;
  const t = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  return Number.isNaN(t) ? null : Math.floor(t / 86_400_000);
}

/** Is `rel` a path the memory plugin indexes (and may read back or write)? */
export function isMemoryPath(rel: string): boolean {
  if (rel === 'MEMORY.md') return true;
  return rel.startsWith('memory/') && rel.endsWith('.md') && !rel.split('/').some((p) => p === '' || p === '.' || p === '..' || p.startsWith('.'));
}

/**
 * List memory files. Symlinks are followed only when they resolve inside the
 * workspace: a link to ~/.ssh must not become searchable memory.
 */
export function scanWorkspace(workspace: string): SourceFile[] {
  const out: SourceFile[] = [];
  let root: string;
  try {
    root = realpathSync(workspace);
  } catch {
    return out;
  }
  const consider = (abs: string, rel: string) => {
    try {
      // realpath of the file itself, so a symlinked memory/ directory is caught too
      const real = realpathSync(abs);
      if (!insideRoot(root, real)) return;
      const st = statSync(real);
      if (!st.isFile() || st.size > MAX_FILE_BYTES) return;
      const name = rel.slice(rel.lastIndexOf('/') + 1);
      const day = rel.startsWith('memory/') ? dayOfDailyName(name) : null;
      out.push({ rel, abs: real, source: day !== null ? 'daily' : 'memory', day, mtimeMs: Math.floor(st.mtimeMs), size: st.size });
    } catch {
      // vanished or unreadable between listing and stat: not memory this time
    }
  };
  consider(join(root, 'MEMORY.md'), 'MEMORY.md');
  const walk = (dir: string, relDir: string, depth: number) => {
    if (depth > 8) return;
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const abs = join(dir, e.name);
      const rel = `${relDir}/${e.name}`;
      if (e.isDirectory()) walk(abs, rel, depth + 1);
      else if (e.name.endsWith('.md') && (e.isFile() || e.isSymbolicLink())) consider(abs, rel);
    }
  };
  walk(join(root, 'memory'), 'memory', 0);
  return out.sort((a, b) => a.rel.localeCompare(b.rel));
}

export function insideRoot(root: string, real: string): boolean {
  const r = relative(root, real);
  return r !== '' && !r.startsWith('..') && !r.startsWith(sep) && !r.includes(`..${sep}`) && r.split(sep)[0] !== '..';
}
