// The agent's memory tools: search (snippets with file:line), get (exact lines), write.
// Their inputs arrive checked against the schemas below: the kernel refuses
// anything else before the plugin sees it (core/plugins/tool-input.ts).
import type { ToolContext, ToolDef, ToolResult } from '../../../core/plugin-api.ts';
import type { MemoryIndex } from './memory-index.ts';
import { MemoryFileError, appendDaily, curateMemory, readMemoryLines, MAX_GET_LINES, MAX_WRITE_CHARS } from './files.ts';

export type MemoryTool = ToolDef & { run(input: unknown, ctx: ToolContext): Promise<ToolResult | string> };

const searchInput = {
  type: 'object',
  properties: {
    query: { type: 'string', minLength: 1, maxLength: 2000, description: 'What to recall, in natural words.' },
    k: { type: 'integer', minimum: 1, maximum: 25, description: 'How many snippets (default 6).' },
  },
  required: ['query'],
  additionalProperties: false,
};
const getInput = {
  type: 'object',
  properties: {
    path: { type: 'string', minLength: 1, maxLength: 512, description: 'MEMORY.md or memory/<file>.md, as shown by memory_search.' },
    from: { type: 'integer', minimum: 1, description: 'First line (1-based, default 1).' },
    lines: { type: 'integer', minimum: 1, maximum: MAX_GET_LINES, description: `How many lines (default and max ${MAX_GET_LINES}).` },
  },
  required: ['path'],
  additionalProperties: false,
};
const writeInput = {
  type: 'object',
  properties: {
    target: { enum: ['daily', 'memory'], description: '"daily": append to today\'s note memory/YYYY-MM-DD.md. "memory": curate the long-term MEMORY.md.' },
    text: { type: 'string', maxLength: MAX_WRITE_CHARS, description: 'Markdown to write. With "replace", the new text (empty deletes the passage).' },
    section: { type: 'string', minLength: 1, maxLength: 120, description: 'MEMORY.md only: append under this "## " heading (created if missing).' },
    replace: { type: 'string', minLength: 1, maxLength: MAX_WRITE_CHARS, description: 'MEMORY.md only: an exact passage, present once, to replace with text.' },
  },
  required: ['target', 'text'],
  additionalProperties: false,
};

function failure(err: unknown): ToolResult {
  if (err instanceof MemoryFileError) return { content: err.message, isError: true };
  throw err;
}

export function createMemoryTools(deps: { index: () => Promise<MemoryIndex>; now?: () => number }): MemoryTool[] {
  const now = deps.now ?? Date.now;
  return [
    {
      name: 'memory_search',
      description: 'Search long-term memory (MEMORY.md, daily notes in memory/, and opted-in past sessions). Returns snippets with file:line so you can cite or open them with memory_get.',
      input: searchInput,
      async run(input) {
        const { query, k } = input as { query: string; k?: number };
        const idx = await deps.index();
        const res = await idx.search(query, { k: k ?? 6 });
        const lines = res.hits.map((h) => `${h.path}:${h.startLine}-${h.endLine} (score ${h.score})\n${h.snippet}`);
        const notes = res.warnings.map((w) => `note: ${w}`);
        const content = [...notes, res.hits.length ? lines.join('\n\n---\n\n') : 'no memory matched'].join('\n');
        return { content, data: res };
      },
    },
    {
      name: 'memory_get',
      description: 'Read exact lines of a memory file (MEMORY.md or memory/*.md), e.g. around a memory_search hit.',
      input: getInput,
      async run(input) {
        const { path, from, lines } = input as { path: string; from?: number; lines?: number };
        const idx = await deps.index();
        try {
          const r = readMemoryLines(idx.workspace, path, from, lines);
          return { content: `${r.path}:${r.from}-${r.to} (of ${r.totalLines})\n${r.text}`, data: r };
        } catch (err) {
          return failure(err);
        }
      },
    },
    {
      name: 'memory_write',
      description: 'Save something worth remembering. target "daily" appends to today\'s note; target "memory" curates MEMORY.md (append, append under a section, or replace an exact passage). Keep MEMORY.md short and durable; put day-to-day detail in the daily note.',
      input: writeInput,
      async run(input) {
        const w = input as { target: 'daily' | 'memory'; text: string; section?: string; replace?: string };
        const idx = await deps.index();
        try {
          if (w.target === 'daily' && (w.section !== undefined || w.replace !== undefined)) {
            return { content: 'section and replace apply to target "memory" only; daily notes are append-only', isError: true };
          }
          const r = w.target === 'daily' ? appendDaily(idx.workspace, now(), w.text) : curateMemory(idx.workspace, w);
          idx.markDirty();
          await idx.sync();
          return { content: `saved to ${r.path}:${r.startLine}-${r.endLine}`, data: r };
        } catch (err) {
          return failure(err);
        }
      },
    },
  ];
}
