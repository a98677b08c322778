import { createHash } from 'node:crypto';

// ClawHub's content fingerprint of a skill (sha256 over sorted "path:sha256"
// lines), so /api/v1/resolve answers the real clawhub CLI's "is this already
// published?" and "which version is installed?" questions, and our lock file
// records the same value clawhub's origin.json does.

export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function skillFingerprint(files: readonly { path: string; sha256: string }[]): string {
  const payload = [...files]
    .map((f) => ({ path: f.path, sha256: f.sha256 }))
    .sort((a, b) => a.path.localeCompare(b.path))
    .map((f) => `${f.path}:${f.sha256}`)
    .join('\n');
  return sha256Hex(payload);
}
