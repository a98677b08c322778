import { crc32, deflateRawSync, inflateRawSync } from 'node:zlib';
import { ArchiveError, MAX_ENTRIES, MAX_UNPACKED_BYTES, safeRelativePath } from './archive-path.ts';

// ClawHub serves skills as zip files (GET /api/v1/download). A minimal codec:
// writing (deflate, no zip64) for our registry, reading with every entry checked
// for traversal, symlinks and size before a byte is inflated.

export interface ArchiveFile {
  path: string;
  bytes: Uint8Array;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_END = 0x06054b50;
// 1980-01-01 00:00: fixed so the same files always give the same zip bytes.
const DOS_TIME = 0;
const DOS_DATE = (0 << 9) | (1 << 5) | 1;

export function writeZip(files: readonly ArchiveFile[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const file of files) {
    const name = Buffer.from(safeRelativePath(file.path), 'utf8');
    const data = Buffer.from(file.bytes);
    const deflated = deflateRawSync(data);
    const useDeflate = deflated.length < data.length;
    const body = useDeflate ? deflated : data;
    const crc = crc32(data) >>> 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(SIG_LOCAL, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(useDeflate ? 8 : 0, 8);
    local.writeUInt16LE(DOS_TIME, 10);
    local.writeUInt16LE(DOS_DATE, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    locals.push(local, name, body);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(SIG_CENTRAL, 0);
    central.writeUInt16LE((3 << 8) | 20, 4); // made by unix, so external attrs carry a mode
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(useDeflate ? 8 : 0, 10);
    central.writeUInt16LE(DOS_TIME, 12);
    central.writeUInt16LE(DOS_DATE, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(((0o100644 << 16) >>> 0), 38);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, name);
    offset += local.length + name.length + body.length;
  }
  const cdSize = centrals.reduce((n, b) => n + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(SIG_END, 0);
  end.writeUInt16LE(files.length, 8);
  end.writeUInt16LE(files.length, 10);
  end.writeUInt32LE(cdSize, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, ...centrals, end]);
}

/**
 * Read a zip into memory. Refuses (ArchiveError with a reason) traversal,
 * absolute paths, symlinks and other non-regular entries, duplicate names,
 * encrypted or zip64 entries, and anything that would unpack past `maxUnpacked`.
 * Directory entries are skipped.
 */
export function readZip(zip: Uint8Array, opts: { maxUnpacked?: number } = {}): ArchiveFile[] {
  const maxUnpacked = opts.maxUnpacked ?? MAX_UNPACKED_BYTES;
  const buf = Buffer.from(zip.buffer, zip.byteOffset, zip.byteLength);
  const endAt = findEnd(buf);
  const count = buf.readUInt16LE(endAt + 10);
  const cdOffset = buf.readUInt32LE(endAt + 16);
  if (count === 0xffff || cdOffset === 0xffffffff) throw new ArchiveError('zip64', 'zip64 archives are not supported');
  if (count > MAX_ENTRIES) throw new ArchiveError('too-many-entries', `archive has more than ${MAX_ENTRIES} entries`);
  const files: ArchiveFile[] = [];
  const seen = new Set<string>();
  let total = 0;
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    if (p + 46 > buf.length || buf.readUInt32LE(p) !== SIG_CENTRAL) throw new ArchiveError('corrupt', 'corrupt zip central directory');
    const flags = buf.readUInt16LE(p + 8);
    const method = buf.readUInt16LE(p + 10);
    const compressed = buf.readUInt32LE(p + 20);
    const size = buf.readUInt32LE(p + 24);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    const madeBy = buf.readUInt16LE(p + 4) >> 8;
    const external = buf.readUInt32LE(p + 38);
    const localOffset = buf.readUInt32LE(p + 42);
    const rawName = buf.subarray(p + 46, p + 46 + nameLen).toString('utf8');
    p += 46 + nameLen + extraLen + commentLen;
    if (rawName.endsWith('/')) {
      safeRelativePath(rawName.slice(0, -1));
      continue;
    }
    const path = safeRelativePath(rawName);
    if (madeBy === 3) {
      const type = (external >>> 16) & 0o170000;
      if (type === 0o120000) throw new ArchiveError('symlink', `symlink refused: ${path}`);
      if (type !== 0 && type !== 0o100000) throw new ArchiveError('special-file', `non-regular file refused: ${path}`);
    }
    if (flags & 1) throw new ArchiveError('encrypted', `encrypted entry refused: ${path}`);
    if (method !== 0 && method !== 8) throw new ArchiveError('compression', `unsupported compression method ${method}: ${path}`);
    if (seen.has(path)) throw new ArchiveError('duplicate', `duplicate entry refused: ${path}`);
    seen.add(path);
    total += size;
    if (total > maxUnpacked) throw new ArchiveError('too-large', `archive unpacks to more than ${maxUnpacked} bytes`);
    if (localOffset + 30 > buf.length || buf.readUInt32LE(localOffset) !== SIG_LOCAL) throw new ArchiveError('corrupt', 'corrupt zip local header');
    const dataAt = localOffset + 30 + buf.readUInt16LE(localOffset + 26) + buf.readUInt16LE(localOffset + 28);
    const body = buf.subarray(dataAt, dataAt + compressed);
    if (body.length !== compressed) throw new ArchiveError('corrupt', `truncated entry: ${path}`);
    let data: Buffer;
    if (method === 0) data = Buffer.from(body);
    else {
      try {
        // The declared size is the cap: a lying header cannot inflate past it.
        data = inflateRawSync(body, { maxOutputLength: Math.max(size, 1) });
      } catch {
        throw new ArchiveError('too-large', `entry inflates past its declared size or is corrupt: ${path}`);
      }
    }
    if (data.length !== size) throw new ArchiveError('corrupt', `entry size mismatch: ${path}`);
    if ((crc32(data) >>> 0) !== buf.readUInt32LE(p - (46 + nameLen + extraLen + commentLen) + 16)) {
      throw new ArchiveError('corrupt', `crc mismatch: ${path}`);
    }
    files.push({ path, bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
  }
  return files;
}

function findEnd(buf: Buffer): number {
  const min = Math.max(0, buf.length - 22 - 0xffff);
  for (let i = buf.length - 22; i >= min; i--) {
    if (buf.readUInt32LE(i) === SIG_END) return i;
  }
  throw new ArchiveError('corrupt', 'not a zip archive');
}
