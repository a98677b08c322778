// The agent's workspace files (AGENTS.md, SOUL.md, USER.md, TOOLS.md, MEMORY.md),
// read with a per-file cap and cached by mtime so a turn costs a few stat calls.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const BOOTSTRAP_FILES = ['AGENTS.md', 'SOUL.md', 'USER.md', 'TOOLS.md', 'MEMORY.md'] as const;
const MAX_FILE_CHARS = 20_000;

interface Cached {
  mtimeMs: number;
  size: number;
  text: string;
}

export function createWorkspaceReader() {
  const cache = new Map<string, Cached>();
  function read(path: string): string | null {
    let st;
    try {
      st = statSync(path);
    } catch {
      cache.delete(path);
      return null;
    }
    const hit = cache.get(path);
    if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit.text;
    let text = readFileSync(path, 'utf8');
    if (text.length > MAX_FILE_CHARS) text = text.slice(0, MAX_FILE_CHARS) + `\n[... truncated: the file is ${text.length} characters, the first ${MAX_FILE_CHARS} are shown]`;
    cache.set(path, { mtimeMs: st.mtimeMs, size: st.size, text });
    return text;
  }
  return {
    /** The prompt section with every present bootstrap file. */
    section(workspaceDir: string): string {
      const parts: string[] = [];
      for (const f of BOOTSTRAP_FILES) {
        const text = read(join(workspaceDir, f));
        if (text && text.trim()) parts.push(`### ${f}\n${text.trim()}`);
      }
      return parts.length ? `## Workspace files (${workspaceDir})\n${parts.join('\n\n')}` : '';
    },
  };
}
