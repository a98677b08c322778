// A minimal POSIX tar (ustar + pax extended headers for long paths and big
// sizes) writer and a strict streaming reader: just what backups need, so that
// Carapace carries no archive dependency. The reader yields regular files and
// directories only and refuses everything else (symlinks, hard links, devices,
// unknown types) by name — an archive is outside input to `restore`.

const BLOCK = 512;
const MAX_OCTAL_SIZE = 8 ** 11 - 1;

export type TarEntryType = 'file' | 'dir';

export interface TarHeader {
  name: string;
  type: TarEntryType;
  mode: number;
  size: number;
  mtime: number;
}

export class TarError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TarError';
  }
}

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

function rawHeader(name: string, typeflag: string, mode: number, size: number, mtime: number, prefix = ''): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(mode & 0o7777, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(Math.min(size, MAX_OCTAL_SIZE), 12), 124, 'ascii');
  h.write(octal(Math.max(0, Math.floor(mtime / 1000)), 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write(typeflag, 156, 'ascii');
  h.write('ustar\u000000', 257, 'binary');
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'ascii');
  return h;
}

function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return Buffer.alloc(rest === 0 ? 0 : BLOCK - rest);
}

/** The header block(s) for one entry: a pax header first when the name or size does not fit ustar. */
export function tarHeader(entry: TarHeader): Buffer {
  const name = entry.type === 'dir' && !entry.name.endsWith('/') ? `${entry.name}/` : entry.name;
  const typeflag = entry.type === 'dir' ? '5' : '0';
  const size = entry.type === 'dir' ? 0 : entry.size;
  const pax: string[] = [];
  if (Buffer.byteLength(name) > 100) pax.push(paxRecord('path', name));
  if (size > MAX_OCTAL_SIZE) pax.push(paxRecord('size', String(size)));
  const parts: Buffer[] = [];
  if (pax.length) {
    const body = Buffer.from(pax.join(''));
    parts.push(rawHeader('PaxHeader', 'x', 0o600, body.length, entry.mtime), body, padding(body.length));
  }
  parts.push(rawHeader(Buffer.byteLength(name) > 100 ? name.slice(0, 99) : name, typeflag, entry.mode, size, entry.mtime));
  return Buffer.concat(parts);
}

export function tarPadding(size: number): Buffer {
  return padding(size);
}

/** Two zero blocks end an archive. */
export function tarEnd(): Buffer {
  return Buffer.alloc(BLOCK * 2);
}

/** Pulls exact byte counts out of an async stream of chunks. */
class ByteReader {
  readonly #iter: AsyncIterator<Buffer>;
  #chunks: Buffer[] = [];
  #buffered = 0;
  #done = false;

  constructor(source: AsyncIterable<Buffer>) {
    this.#iter = source[Symbol.asyncIterator]();
  }

  async #fill(n: number): Promise<void> {
    while (this.#buffered < n && !this.#done) {
      const next = await this.#iter.next();
      if (next.done) this.#done = true;
      else {
        this.#chunks.push(next.value);
        this.#buffered += next.value.length;
      }
    }
  }

  /** Exactly n bytes, or null at a clean end of input; a short read is an error. */
  async read(n: number): Promise<Buffer | null> {
    await this.#fill(n);
    if (this.#buffered === 0 && this.#done) return null;
    if (this.#buffered < n) throw new TarError('the archive is truncated');
    const all = this.#chunks.length === 1 ? this.#chunks[0] : Buffer.concat(this.#chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.#chunks = rest.length ? [rest] : [];
    this.#buffered = rest.length;
    return out;
  }

  /** n bytes as a series of chunks (for file bodies of any size). */
  async *take(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      const chunk = await this.read(Math.min(left, 1 << 20));
      if (!chunk) throw new TarError('the archive is truncated');
      left -= chunk.length;
      yield chunk;
    }
  }
}

function field(h: Buffer, start: number, len: number): string {
  const raw = h.subarray(start, start + len);
  const nul = raw.indexOf(0);
  return raw.subarray(0, nul === -1 ? len : nul).toString('utf8');
}

function parseOctal(h: Buffer, start: number, len: number, what: string): number {
  const text = field(h, start, len).trim();
  if (!/^[0-7]+$/.test(text)) throw new TarError(`bad ${what} field in a tar header`);
  return Number.parseInt(text, 8);
}

function checksumOk(h: Buffer): boolean {
  const stored = parseOctal(h, 148, 8, 'checksum');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i];
  return sum === stored;
}

function parsePax(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < body.length) {
    const space = body.indexOf(0x20, i);
    if (space === -1) throw new TarError('malformed pax header');
    const len = Number.parseInt(body.subarray(i, space).toString('ascii'), 10);
    if (!Number.isInteger(len) || len <= 0 || i + len > body.length) throw new TarError('malformed pax header');
    const rec = body.subarray(space + 1, i + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq === -1) throw new TarError('malformed pax header');
    out[rec.slice(0, eq)] = rec.slice(eq + 1);
    i += len;
  }
  return out;
}

/**
 * Read a tar stream entry by entry. For each entry the callback gets its header
 * and an iterator over its body (consumed or not before it returns).
 */
export async function readTar(source: AsyncIterable<Buffer>, onEntry: (header: TarHeader, body: AsyncGenerator<Buffer>) => Promise<void>): Promise<void> {
  const r = new ByteReader(source);
  let pax: Record<string, string> = {};
  for (;;) {
    const h = await r.read(BLOCK);
    if (!h) throw new TarError('the archive ends without an end-of-archive marker');
    if (h.every((b) => b === 0)) return;
    if (!checksumOk(h)) throw new TarError('a tar header checksum does not match (corrupt archive)');
    const typeflag = String.fromCharCode(h[156] || 0x30);
    const size = parseOctal(h, 124, 12, 'size');
    if (typeflag === 'x') {
      if (size > 1 << 20) throw new TarError('oversized pax header');
      const body = await r.read(size + padding(size).length);
      if (!body) throw new TarError('the archive is truncated');
      pax = parsePax(body.subarray(0, size));
      continue;
    }
    const prefix = field(h, 345, 155);
    let name = pax.path ?? (prefix ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100));
    const realSize = pax.size !== undefined ? Number(pax.size) : size;
    pax = {};
    let type: TarEntryType;
    if (typeflag === '0') type = 'file';
    else if (typeflag === '5') type = 'dir';
    else if (typeflag === '1' || typeflag === '2') throw new TarError(`refusing ${name}: links are not allowed in a backup`);
    else throw new TarError(`refusing ${name}: entry type "${typeflag}" is not a regular file or directory`);
    if (type === 'dir') name = name.replace(/\/+$/, '');
    if (!Number.isSafeInteger(realSize) || realSize < 0) throw new TarError(`bad size for ${name}`);
    const header: TarHeader = { name, type, mode: parseOctal(h, 100, 8, 'mode'), size: type === 'dir' ? 0 : realSize, mtime: parseOctal(h, 136, 12, 'mtime') * 1000 };
    let left = header.size;
    const body = (async function* () {
      for await (const chunk of r.take(header.size)) {
        left -= chunk.length;
        yield chunk;
      }
    })();
    await onEntry(header, body);
    // Whatever the callback left unread is skipped, so the stream stays aligned.
    for await (const chunk of r.take(left)) void chunk;
    const pad = padding(header.size).length;
    if (pad && !(await r.read(pad))) throw new TarError('the archive is truncated');
  }
}
