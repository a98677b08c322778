// Splitting a reply to fit a channel's message size limit. Prose is split on
// paragraphs, then lines, then sentences, then words (a hard cut only for a word
// longer than the limit). A fenced code block is never split in the middle: it
// moves whole to the next chunk, and a block that alone exceeds the limit is cut
// between lines, each part closed and the fence reopened (same info string) in
// the next chunk. Lengths are UTF-16 code units, what platform limits count.

interface Segment {
  kind: 'prose' | 'code';
  text: string;
  /** For code: the opening fence line (with info string) and the closing fence. */
  open?: string;
  close?: string;
  body?: string[];
}

const FENCE_OPEN = /^ {0,3}(`{3,}|~{3,})([^`]*)$/;

export function segments(text: string): Segment[] {
  const lines = text.split('\n');
  const out: Segment[] = [];
  let prose: string[] = [];
  const flushProse = (): void => {
    if (prose.length) out.push({ kind: 'prose', text: prose.join('\n') });
    prose = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const m = FENCE_OPEN.exec(lines[i]);
    if (!m) {
      prose.push(lines[i]);
      continue;
    }
    const fence = m[1];
    const closeRe = new RegExp(`^ {0,3}${fence[0] === '`' ? '`' : '~'}{${fence.length},}\\s*$`);
    let j = i + 1;
    while (j < lines.length && !closeRe.test(lines[j])) j++;
    flushProse();
    const closed = j < lines.length;
    const body = lines.slice(i + 1, j);
    const close = closed ? lines[j] : fence;
    out.push({ kind: 'code', open: lines[i], close, body, text: [lines[i], ...body, ...(closed ? [lines[j]] : [])].join('\n') });
    i = j;
  }
  flushProse();
  return out;
}

/** Cut a string into pieces of at most `limit`, never between the halves of a surrogate pair. */
function hardCut(text: string, limit: number): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    let end = Math.min(text.length, i + limit);
    if (end < text.length && /[\uD800-\uDBFF]/.test(text[end - 1])) end--;
    if (end <= i) end = i + 1;
    out.push(text.slice(i, end));
    i = end;
  }
  return out;
}

// Each level splits into parts that keep their separator, so concatenation restores the text.
const LEVELS: ((text: string) => string[])[] = [
  (t) => t.split(/(?<=\n\n)/),
  (t) => t.split(/(?<=\n)/),
  (t) => t.split(/(?<=[.!?…。！？]["')\]]*\s+)/),
  (t) => t.split(/(?<=\s)/),
];

function splitProse(text: string, limit: number, level = 0): string[] {
  if (text.length <= limit) return [text];
  if (level >= LEVELS.length) return hardCut(text, limit);
  const pieces: string[] = [];
  for (const part of LEVELS[level](text)) {
    if (part.length <= limit) pieces.push(part);
    else pieces.push(...splitProse(part, limit, level + 1));
  }
  return pack(pieces, limit);
}

function pack(pieces: string[], limit: number): string[] {
  const out: string[] = [];
  let cur = '';
  for (const p of pieces) {
    if (cur.length + p.length <= limit) cur += p;
    else {
      if (cur) out.push(cur);
      cur = p;
    }
  }
  if (cur) out.push(cur);
  return out;
}

function splitCode(seg: Segment, limit: number): string[] {
  const open = seg.open!;
  const close = seg.close!;
  const room = limit - open.length - close.length - 2; // two newlines around the body
  if (room < 1) return hardCut(seg.text, limit); // a limit smaller than the fences themselves: nothing better exists
  const parts: string[] = [];
  let cur: string[] = [];
  let size = -1;
  for (const line of seg.body!) {
    const lines = line.length <= room ? [line] : hardCut(line, room);
    for (const l of lines) {
      if (cur.length > 0 && size + 1 + l.length > room) {
        parts.push(`${open}\n${cur.join('\n')}\n${close}`);
        cur = [];
        size = -1;
      }
      cur.push(l);
      size += 1 + l.length;
    }
  }
  if (cur.length > 0 || parts.length === 0) parts.push(`${open}\n${cur.join('\n')}\n${close}`);
  return parts;
}

/** Split `text` into chunks of at most `limit` characters. */
export function chunkText(text: string, limit: number): string[] {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`chunk limit must be a positive integer, got ${limit}`);
  if (text.length <= limit) return [text];
  const pieces: string[] = [];
  const segs = segments(text);
  segs.forEach((seg, i) => {
    // The newline that separated this segment from the next belongs to this one.
    const sep = i < segs.length - 1 ? '\n' : '';
    if (seg.kind === 'prose') pieces.push(...splitProse(seg.text + sep, limit));
    else if (seg.text.length + sep.length <= limit) pieces.push(seg.text + sep);
    else pieces.push(...splitCode(seg, limit).map((p) => (p.length + sep.length <= limit ? p + sep : p)));
  });
  return pack(pieces, limit)
    .map((c) => c.replace(/^\n+|\s+$/g, ''))
    .filter((c) => c.length > 0);
}
