// Markdown → chunks of about `maxTokens`, cut at structural boundaries (headings,
// blank lines, fences), each carrying the exact 1-based line range it came from.
import { createHash } from 'node:crypto';

export interface Chunk {
  /** 1-based, inclusive. */
  startLine: number;
  endLine: number;
  /** The heading path above the chunk ("Projects > Carapace"), indexed with the text. */
  heading: string;
  text: string;
  /** sha256 of heading + text: the unit of "did this change". */
  hash: string;
}

export interface ChunkOptions {
  maxTokens?: number;
  overlapTokens?: number;
}

/** Rough token count: ~4 characters per token for English prose and code. */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

export function chunkHash(heading: string, text: string): string {
  return createHash('sha256').update(heading).update('\u0000').update(text).digest('hex');
}

interface Block {
  start: number; // 0-based line index
  end: number; // inclusive
  heading: string; // heading path in force for this block
  isHeading: boolean;
}

const HEADING = /^(#{1,6})\s+(.*?)\s*#*\s*$/;
const FENCE = /^\s{0,3}(`{3,}|~{3,})/;

/** Split lines into blocks: headings, fenced code, and blank-line separated paragraphs. */
function blocks(lines: string[]): Block[] {
  const out: Block[] = [];
  const path: string[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (line.trim() === '') {
      i++;
      continue;
    }
    const h = HEADING.exec(line);
    if (h) {
      const level = h[1].length;
      path.length = level - 1;
      path[level - 1] = h[2];
      out.push({ start: i, end: i, heading: path.filter(Boolean).join(' > '), isHeading: true });
      i++;
      continue;
    }
    const heading = path.filter(Boolean).join(' > ');
    const f = FENCE.exec(line);
    if (f) {
      const marker = f[1];
      let j = i + 1;
      while (j < lines.length && !lines[j].trimStart().startsWith(marker)) j++;
      const end = Math.min(j, lines.length - 1);
      out.push({ start: i, end, heading, isHeading: false });
      i = end + 1;
      continue;
    }
    let j = i;
    while (j + 1 < lines.length && lines[j + 1].trim() !== '' && !HEADING.test(lines[j + 1]) && !FENCE.test(lines[j + 1])) j++;
    out.push({ start: i, end: j, heading, isHeading: false });
    i = j + 1;
  }
  return out;
}

/**
 * Chunk a Markdown document. A heading starts a new chunk; paragraphs are packed
 * until the budget; a block larger than the budget is split by lines (and a single
 * giant line stays whole: provenance is by line, never by character). Consecutive
 * chunks inside one section overlap by about `overlapTokens` of trailing lines so a
 * fact straddling the cut is still whole in one of them.
 */
export function chunkMarkdown(source: string, opts: ChunkOptions = {}): Chunk[] {
  const maxTokens = opts.maxTokens ?? 400;
  const overlapTokens = opts.overlapTokens ?? 60;
  const lines = source.replace(/\r\n?/g, '\n').split('\n');
  const chunks: Chunk[] = [];
  let cur: { start: number; end: number; heading: string; tokens: number } | null = null;

  const emit = () => {
    if (!cur) return;
    const text = lines.slice(cur.start, cur.end + 1).join('\n').trim();
    if (text) chunks.push({ startLine: cur.start + 1, endLine: cur.end + 1, heading: cur.heading, text, hash: chunkHash(cur.heading, text) });
    cur = null;
  };
  const tokensOf = (a: number, b: number) => {
    let n = 0;
    for (let k = a; k <= b; k++) n += estimateTokens(lines[k]) + 1;
    return n;
  };
  // Start a continuation chunk carrying the tail of the previous one.
  const continueWithOverlap = (prev: { start: number; end: number; heading: string }, nextStart: number) => {
    let s = nextStart;
    let t = 0;
    while (s - 1 > prev.start && t + estimateTokens(lines[s - 1]) <= overlapTokens) {
      s--;
      t += estimateTokens(lines[s]) + 1;
    }
    cur = { start: s, end: nextStart - 1, heading: prev.heading, tokens: t };
  };

  for (const b of blocks(lines)) {
    if (b.isHeading) {
      // Stacked headings ("# Memory" then "## People") share one chunk with the body below them.
      const c = cur as { start: number; end: number; heading: string; tokens: number } | null;
      if (c && !lines.slice(c.start, c.end + 1).some((l) => l.trim() !== '' && !HEADING.test(l))) {
        c.end = b.end;
        c.heading = b.heading;
        c.tokens += tokensOf(b.start, b.end);
        continue;
      }
      emit();
      cur = { start: b.start, end: b.end, heading: b.heading, tokens: tokensOf(b.start, b.end) };
      continue;
    }
    const size = tokensOf(b.start, b.end);
    if (cur && cur.tokens + size > maxTokens && cur.tokens > 0) {
      const prev: { start: number; end: number; heading: string } = cur;
      const onlyHeading = prev.start === prev.end && HEADING.test(lines[prev.start]);
      if (!onlyHeading) {
        emit();
        continueWithOverlap(prev, b.start);
      }
    }
    if (!cur) cur = { start: b.start, end: b.start - 1, heading: b.heading, tokens: 0 };
    if (size <= maxTokens) {
      cur.end = b.end;
      cur.tokens += size;
      continue;
    }
    // An oversized block: pack it line by line.
    for (let k = b.start; k <= b.end; k++) {
      const lt = estimateTokens(lines[k]) + 1;
      if (cur!.tokens + lt > maxTokens && cur!.end >= cur!.start) {
        const prev: { start: number; end: number; heading: string } = cur!;
        emit();
        continueWithOverlap(prev, k);
      }
      if (!cur) cur = { start: k, end: k - 1, heading: b.heading, tokens: 0 };
      cur.end = k;
      cur.tokens += lt;
    }
  }
  emit();
  return chunks;
}
