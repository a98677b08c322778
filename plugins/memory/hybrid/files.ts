// Reading and writing the memory files themselves, confined to the workspace:
// every path is checked by name (MEMORY.md, memory/**.md) and by where it really
// resolves (symlinks included) before a byte is read or written.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { insideRoot, isMemoryPath } from './sources.ts';

export class MemoryFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MemoryFileError';
  }
}

export const MAX_WRITE_CHARS = 16_000;
export const MAX_GET_LINES = 400;

/** Normalise a model-supplied path and refuse anything that is not a memory file of this workspace. */
export function checkMemoryPath(rel: unknown): string {
  if (typeof rel !== 'string' || rel.length === 0 || rel.length > 512) throw new MemoryFileError('path must be a non-empty string');
  if (rel.includes('\0')) throw new MemoryFileError('path contains a NUL byte');
  if (rel.startsWith('/') || /^[a-zA-Z]:/.test(rel) || rel.includes('\\')) throw new MemoryFileError(`"${rel}" is not a workspace-relative path`);
  const norm = posix.normalize(rel);
  if (norm !== rel.replace(/^\.\//, '') || norm.startsWith('..')) throw new MemoryFileError(`"${rel}" leaves the memory files (no "..", no "." segments)`);
  if (!isMemoryPath(norm)) throw new MemoryFileError(`"${rel}" is not a memory file (MEMORY.md or memory/*.md)`);
  return norm;
}

function realWorkspace(workspace: string): string {
  try {
    return realpathSync(workspace);
  } catch {
    throw new MemoryFileError('the workspace does not exist');
  }
}

/** Absolute real path of an existing memory file, or null when it does not exist. Throws when it escapes. */
export function resolveExisting(workspace: string, rel: string): string | null {
  const root = realWorkspace(workspace);
  const abs = join(root, rel);
  if (!existsSync(abs)) return null;
  const real = realpathSync(abs);
  if (!insideRoot(root, real)) throw new MemoryFileError(`"${rel}" resolves outside the workspace`);
  return real;
}

/** Where a write to `rel` lands: the real target, checked to stay inside the workspace. */
function resolveForWrite(workspace: string, rel: string): string {
  const existing = resolveExisting(workspace, rel);
  if (existing) return existing;
  const root = realWorkspace(workspace);
  const abs = join(root, rel);
  const dir = dirname(abs);
  if (!existsSync(dir)) {
    // Only create directories whose nearest existing ancestor is inside the workspace.
    let probe = dir;
    while (!existsSync(probe)) probe = dirname(probe);
    const realProbe = realpathSync(probe);
    if (realProbe !== root && !insideRoot(root, realProbe)) throw new MemoryFileError(`"${rel}" resolves outside the workspace`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  const realDir = realpathSync(dir);
  if (realDir !== root && !insideRoot(root, realDir)) throw new MemoryFileError(`"${rel}" resolves outside the workspace`);
  return join(realDir, rel.slice(rel.lastIndexOf('/') + 1));
}

function writeAtomic(path: string, data: string): void {
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  writeFileSync(tmp, data, { mode: 0o600 });
  const fd = openSync(tmp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

export interface LinesResult {
  path: string;
  from: number;
  to: number;
  totalLines: number;
  text: string;
}

export function sliceLines(path: string, content: string, from = 1, count?: number): LinesResult {
  const lines = content.replace(/\r\n?/g, '\n').split('\n');
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
  const start = Math.max(1, Math.floor(from));
  const n = Math.max(1, Math.min(Math.floor(count ?? MAX_GET_LINES), MAX_GET_LINES));
  const end = Math.min(lines.length, start + n - 1);
  return { path, from: start, to: end, totalLines: lines.length, text: start > lines.length ? '' : lines.slice(start - 1, end).join('\n') };
}

export function readMemoryLines(workspace: string, rel: string, from?: number, count?: number): LinesResult {
  const path = checkMemoryPath(rel);
  const real = resolveExisting(workspace, path);
  if (!real) throw new MemoryFileError(`"${path}" does not exist`);
  return sliceLines(path, readFileSync(real, 'utf8'), from, count);
}

/** Local calendar date: daily notes follow the owner's day, not UTC's. */
export function localDate(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

export interface WriteResult {
  path: string;
  /** Lines of the file now holding the written text (1-based, inclusive). */
  startLine: number;
  endLine: number;
}

function checkText(text: unknown, allowEmpty = false): string {
  if (typeof text !== 'string') throw new MemoryFileError('text must be a string');
  if (!allowEmpty && text.trim() === '') throw new MemoryFileError('text is empty');
  if (text.length > MAX_WRITE_CHARS) throw new MemoryFileError(`text is ${text.length} characters; at most ${MAX_WRITE_CHARS} per write`);
  if (text.includes('\0')) throw new MemoryFileError('text contains a NUL byte');
  return text.replace(/\r\n?/g, '\n');
}

function appendBlock(existing: string, block: string): { content: string; startLine: number; endLine: number } {
  let base = existing;
  if (base !== '' && !base.endsWith('\n')) base += '\n';
  if (base !== '' && !base.endsWith('\n\n')) base += '\n';
  const startLine = base === '' ? 1 : base.split('\n').length;
  const body = block.replace(/\n+$/, '');
  return { content: base + body + '\n', startLine, endLine: startLine + body.split('\n').length - 1 };
}

/** Append a block to today's daily note (memory/YYYY-MM-DD.md), creating it with a date heading. */
export function appendDaily(workspace: string, now: number, text: unknown): WriteResult {
  const body = checkText(text).trim();
  const date = localDate(now);
  const rel = `memory/${date}.md`;
  const target = resolveForWrite(workspace, rel);
  const existing = existsSync(target) ? readFileSync(target, 'utf8') : `# ${date}\n`;
  const out = appendBlock(existing, body);
  writeAtomic(target, out.content);
  return { path: rel, startLine: out.startLine, endLine: out.endLine };
}

/**
 * Curate MEMORY.md: with `replace`, swap one exact, unique passage for `text` (empty
 * text deletes it); otherwise append `text` at the end of `## section` (created if
 * missing) or of the file.
 */
export function curateMemory(workspace: string, opts: { text: unknown; section?: unknown; replace?: unknown }): WriteResult {
  const rel = 'MEMORY.md';
  const target = resolveForWrite(workspace, rel);
  const existing = existsSync(target) ? readFileSync(target, 'utf8').replace(/\r\n?/g, '\n') : '# Memory\n';
  if (opts.replace !== undefined) {
    const old = checkText(opts.replace);
    const text = checkText(opts.text, true);
    const count = existing.split(old).length - 1;
    if (count !== 1) throw new MemoryFileError(`the passage to replace occurs ${count} times in MEMORY.md; it must occur exactly once`);
    const at = existing.indexOf(old);
    const content = existing.slice(0, at) + text + existing.slice(at + old.length);
    writeAtomic(target, content);
    const startLine = existing.slice(0, at).split('\n').length;
    return { path: rel, startLine, endLine: startLine + Math.max(0, text.split('\n').length - 1) };
  }
  const text = checkText(opts.text).trim();
  if (opts.section !== undefined) {
    if (typeof opts.section !== 'string' || !/^[^\n#][^\n]{0,119}$/.test(opts.section.trim())) throw new MemoryFileError('section must be a one-line heading text of at most 120 characters');
    const name = opts.section.trim();
    const lines = existing.split('\n');
    const at = lines.findIndex((l) => /^##\s+/.test(l) && l.replace(/^##\s+/, '').trim().toLowerCase() === name.toLowerCase());
    if (at >= 0) {
      // End of the section: the next heading of level <= 2, minus trailing blank lines.
      let end = lines.length;
      for (let i = at + 1; i < lines.length; i++) if (/^#{1,2}\s+/.test(lines[i])) { end = i; break; }
      let last = end - 1;
      while (last > at && lines[last].trim() === '') last--;
      const inserted = text.split('\n');
      const next = [...lines.slice(0, last + 1), ...inserted, ...(end < lines.length ? [''] : []), ...lines.slice(end)];
      let content = next.join('\n');
      if (!content.endsWith('\n')) content += '\n';
      writeAtomic(target, content);
      return { path: rel, startLine: last + 2, endLine: last + 1 + inserted.length };
    }
    const out = appendBlock(existing, `## ${name}\n\n${text}`);
    writeAtomic(target, out.content);
    return { path: rel, startLine: out.startLine + 2, endLine: out.endLine };
  }
  const out = appendBlock(existing, text);
  writeAtomic(target, out.content);
  return { path: rel, startLine: out.startLine, endLine: out.endLine };
}

export interface FlushResult extends WriteResult {
  written: number;
  skipped: number;
}

/**
 * Before compaction: append the durable facts the agent extracted to today's daily
 * note under one timestamped heading. Facts already present in today's note (same
 * text, ignoring case and bullets) are skipped, so a retried flush adds nothing.
 */
export function flushFacts(workspace: string, now: number, input: { facts: unknown; sessionKey?: unknown }): FlushResult | { path: string; written: 0; skipped: number; startLine: 0; endLine: 0 } {
  if (!Array.isArray(input.facts) || input.facts.length > 100) throw new MemoryFileError('facts must be an array of at most 100 strings');
  const facts = input.facts.map((f) => checkText(f).trim().replace(/\s*\n\s*/g, ' '));
  const rel = `memory/${localDate(now)}.md`;
  const existingPath = resolveExisting(workspace, rel);
  const have = new Set((existingPath ? readFileSync(existingPath, 'utf8') : '').split('\n').map((l) => l.replace(/^\s*[-*]\s+/, '').trim().toLowerCase()));
  const fresh = [...new Set(facts)].filter((f) => f && !have.has(f.toLowerCase()));
  if (fresh.length === 0) return { path: rel, written: 0, skipped: facts.length, startLine: 0, endLine: 0 };
  const d = new Date(now);
  const hhmm = `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
  const session = typeof input.sessionKey === 'string' && input.sessionKey ? ` (${input.sessionKey.replace(/[\n\r]/g, ' ').slice(0, 120)})` : '';
  const res = appendDaily(workspace, now, `## Flushed before compaction ${hhmm}${session}\n\n${fresh.map((f) => `- ${f}`).join('\n')}`);
  return { ...res, written: fresh.length, skipped: facts.length - fresh.length };
}
