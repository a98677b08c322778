import { gunzipSync, gzipSync } from 'node:zlib';
import { ArchiveError, MAX_ENTRIES, MAX_UNPACKED_BYTES, safeRelativePath } from './archive-path.ts';
import type { ArchiveFile } from './zip.ts';

// Plugin releases are .tgz files. Reading is all in memory with hard caps:
// the gzip stream may not inflate past the unpacked cap (zip bomb), and only
// regular files and directories are accepted — symlinks, hard links, devices
// and FIFOs are refused, as are absolute and `..` paths.

export interface TarEntryInput {
  path: string;
  bytes?: Uint8Array;
  /** '0' file (default), '5' directory, '2' symlink, '1' hard link, '3'/'4' device, '6' fifo. */
  type?: string;
  linkname?: string;
  mode?: number;
}

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function header(name: string, size: number, type: string, linkname: string, mode: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(mode, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(0, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write(type, 156, 'ascii');
  h.write(linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'ascii');
  return h;
}

function pad(n: number): Buffer {
  return Buffer.alloc((512 - (n % 512)) % 512);
}

/**
 * Write a tar (gzipped) from entries. Paths are written as given — the writer
 * does not judge them, the reader does — with a pax header for long names.
 */
export function writeTgz(entries: readonly TarEntryInput[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? '0';
    const data = type === '0' ? Buffer.from(e.bytes ?? new Uint8Array()) : Buffer.alloc(0);
    const nameBytes = Buffer.byteLength(e.path, 'utf8');
    if (nameBytes > 99) {
      const record = (len: number) => `${len} path=${e.path}\n`;
      let len = Buffer.byteLength(record(0));
      while (Buffer.byteLength(record(len)) !== len) len = Buffer.byteLength(record(len));
      const pax = Buffer.from(record(len), 'utf8');
      parts.push(header('PaxHeader', pax.length, 'x', '', 0o644), pax, pad(pax.length));
    }
    parts.push(header(nameBytes > 99 ? e.path.slice(0, 99) : e.path, data.length, type, e.linkname ?? '', e.mode ?? (type === '5' ? 0o755 : 0o644)));
    parts.push(data, pad(data.length));
  }
  parts.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(parts));
}

function readString(buf: Buffer, start: number, len: number): string {
  const slice = buf.subarray(start, start + len);
  const nul = slice.indexOf(0);
  return slice.subarray(0, nul < 0 ? len : nul).toString('utf8');
}

function readOctal(buf: Buffer, start: number, len: number, what: string): number {
  const text = readString(buf, start, len).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new ArchiveError('corrupt', `corrupt tar header (${what})`);
  return parseInt(text, 8);
}

function parsePax(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let p = 0;
  while (p < data.length) {
    const space = data.indexOf(0x20, p);
    if (space < 0) break;
    const len = Number(data.subarray(p, space).toString('ascii'));
    if (!Number.isSafeInteger(len) || len <= 0 || p + len > data.length) throw new ArchiveError('corrupt', 'corrupt pax header');
    const record = data.subarray(space + 1, p + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    p += len;
  }
  return out;
}

const REFUSED_TYPES: Record<string, [string, string]> = {
  '1': ['hardlink', 'hard link'],
  '2': ['symlink', 'symlink'],
  '3': ['device', 'character device'],
  '4': ['device', 'block device'],
  '6': ['fifo', 'FIFO'],
  '7': ['special-file', 'contiguous file'],
};

/** Read a .tgz into memory, refusing anything unsafe with an ArchiveError naming the reason. */
export function readTgz(tgz: Uint8Array, opts: { maxUnpacked?: number } = {}): ArchiveFile[] {
  const maxUnpacked = opts.maxUnpacked ?? MAX_UNPACKED_BYTES;
  let tar: Buffer;
  try {
    // Headers and padding ride on top of the file bytes; allow them a small margin.
    tar = gunzipSync(tgz, { maxOutputLength: maxUnpacked + 1024 * 1024 });
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
      throw new ArchiveError('too-large', `archive unpacks to more than ${maxUnpacked} bytes`);
    }
    throw new ArchiveError('corrupt', 'not a gzip archive');
  }
  const files: ArchiveFile[] = [];
  const seen = new Set<string>();
  let total = 0;
  let p = 0;
  let pax: Record<string, string> = {};
  let longName: string | null = null;
  let count = 0;
  while (p + 512 <= tar.length) {
    const h = tar.subarray(p, p + 512);
    if (h.every((b) => b === 0)) break;
    if (++count > MAX_ENTRIES) throw new ArchiveError('too-many-entries', `archive has more than ${MAX_ENTRIES} entries`);
    const size = readOctal(h, 124, 12, 'size');
    const type = String.fromCharCode(h[156]!) === '\0' ? '0' : String.fromCharCode(h[156]!);
    const dataStart = p + 512;
    const data = tar.subarray(dataStart, dataStart + size);
    if (data.length !== size) throw new ArchiveError('corrupt', 'truncated tar entry');
    p = dataStart + size + ((512 - (size % 512)) % 512);
    if (type === 'x') {
      pax = parsePax(data);
      continue;
    }
    if (type === 'g') continue;
    if (type === 'L') {
      longName = readString(data, 0, data.length);
      continue;
    }
    const prefix = readString(h, 345, 155);
    const baseName = readString(h, 0, 100);
    const rawName = pax.path ?? longName ?? (prefix ? `${prefix}/${baseName}` : baseName);
    pax = {};
    longName = null;
    const refused = REFUSED_TYPES[type];
    if (refused) throw new ArchiveError(refused[0], `${refused[1]} refused: ${rawName}`);
    if (type === '5') {
      // `tar -C DIR .` starts with the folder itself, `./`: nothing to create.
      if (rawName !== './') safeRelativePath(rawName.replace(/\/+$/, ''));
      continue;
    }
    if (type !== '0') throw new ArchiveError('special-file', `unsupported tar entry type "${type}": ${rawName}`);
    const path = safeRelativePath(rawName);
    if (seen.has(path)) throw new ArchiveError('duplicate', `duplicate entry refused: ${path}`);
    seen.add(path);
    total += size;
    if (total > maxUnpacked) throw new ArchiveError('too-large', `archive unpacks to more than ${maxUnpacked} bytes`);
    files.push({ path, bytes: new Uint8Array(Buffer.from(data)) });
  }
  return files;
}
