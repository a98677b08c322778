// One rule for every path that comes out of an archive or an upload, so zip,
// tar and the skill publish route cannot disagree about what is safe.

export class ArchiveError extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.name = 'ArchiveError';
    this.reason = reason;
  }
}

/** Unpacked-size cap for any archive we extract (registry.md: 50 MiB — zip bombs). */
export const MAX_UNPACKED_BYTES = 50 * 1024 * 1024;
export const MAX_ENTRIES = 10_000;
/** Largest plugin release (.tgz) the registry accepts or a client downloads. */
export const MAX_PLUGIN_TARBALL_BYTES = 50 * 1024 * 1024;

/**
 * A relative POSIX path with no `..`, no absolute root, no drive letters, no
 * backslashes, no empty or `.` segments and no control characters; returned
 * unchanged when safe, otherwise an ArchiveError naming why.
 */
export function safeRelativePath(raw: string): string {
  if (typeof raw !== 'string' || raw.length === 0) throw new ArchiveError('empty-path', 'an entry has an empty path');
  if (raw.length > 512) throw new ArchiveError('path-too-long', `path too long: ${raw.slice(0, 64)}...`);
  if (raw.startsWith('/') || /^[A-Za-z]:/.test(raw)) throw new ArchiveError('absolute-path', `absolute path refused: ${raw}`);
  if (raw.includes('\\')) throw new ArchiveError('backslash-path', `backslash in path refused: ${raw}`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(raw)) throw new ArchiveError('control-char-path', 'control character in path refused');
  const trimmed = raw.startsWith('./') ? raw.slice(2) : raw;
  const segments = trimmed.split('/');
  for (const s of segments) {
    if (s === '..') throw new ArchiveError('path-traversal', `path traversal refused: ${raw}`);
    if (s === '' || s === '.') throw new ArchiveError('bad-path', `malformed path refused: ${raw}`);
  }
  return trimmed;
}
