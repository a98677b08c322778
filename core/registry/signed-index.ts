import { b64, fromB64, keyIdOf, sign, verify, type KeyPair } from '../identity/keys.ts';
import { canonicalJson } from '../plugins/canonical-json.ts';

// What the registry says about one plugin package, signed with the registry's
// own ed25519 key (registry.md): a client that pinned the key detects a forged
// index (bad signature), a frozen one (expired), a replayed older one
// (timestamp before the last it saw) and a swapped release (sha256 per version).

export interface IndexVersion {
  sha256: string;
  keyId: string;
  yanked?: string;
}

export interface PackageIndex {
  name: string;
  versions: Record<string, IndexVersion>;
  latest: string | null;
  timestamp: string;
  expires: string;
}

export interface IndexSignature {
  alg: 'ed25519';
  keyId: string;
  sig: string;
}

export type SignedPackageIndex = PackageIndex & { signature: IndexSignature };

export interface RegistryPublicKey {
  alg: 'ed25519';
  keyId: string;
  publicKey: string;
}

export const DEFAULT_INDEX_TTL_MS = 24 * 60 * 60 * 1000;

export function registryPublicKey(kp: KeyPair): RegistryPublicKey {
  return { alg: 'ed25519', keyId: keyIdOf(kp.publicKey), publicKey: b64(kp.publicKey) };
}

export function signIndex(index: PackageIndex, kp: KeyPair): SignedPackageIndex {
  const sig = sign(canonicalJson(index), kp);
  return { ...index, signature: { alg: 'ed25519', keyId: keyIdOf(kp.publicKey), sig } };
}

export class IndexRefused extends Error {
  readonly reason: 'bad-signature' | 'malformed' | 'wrong-package' | 'expired' | 'rollback' | 'version-changed' | 'version-removed' | 'registry-key-changed';
  constructor(reason: IndexRefused['reason'], message: string) {
    super(message);
    this.name = 'IndexRefused';
    this.reason = reason;
  }
}

/** What a client remembers of the last index it accepted for a package. */
export interface SeenIndex {
  timestamp: string;
  versions: Record<string, string>;
}

const HEX64 = /^[0-9a-f]{64}$/;

function parseTime(value: unknown, what: string): number {
  const t = typeof value === 'string' ? Date.parse(value) : NaN;
  if (!Number.isFinite(t)) throw new IndexRefused('malformed', `index ${what} is not a timestamp`);
  return t;
}

/**
 * Check a served index against the pinned registry key, the clock and what was
 * seen before. Returns the index on success; throws IndexRefused naming why.
 * Order matters: nothing in an unsigned document is believed, so the
 * signature is checked before any field is compared.
 */
export function verifyIndex(doc: unknown, expectedName: string, pinned: RegistryPublicKey, now: number, seen: SeenIndex | undefined): PackageIndex {
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new IndexRefused('malformed', 'index is not a JSON object');
  const { signature, ...body } = doc as Record<string, unknown>;
  const sig = signature as Partial<IndexSignature> | undefined;
  if (!sig || sig.alg !== 'ed25519' || typeof sig.sig !== 'string') throw new IndexRefused('bad-signature', 'index is not signed');
  if (sig.keyId !== pinned.keyId) {
    throw new IndexRefused('registry-key-changed', `index is signed by key ${String(sig.keyId)}, not the pinned registry key ${pinned.keyId}: the registry changed its key, or this is not that registry; if its operator confirms the new key, remove its pin from registry/pins.json in the Carapace home`);
  }
  const publicKey = fromB64(pinned.publicKey, 32);
  let canonical: string;
  try {
    canonical = canonicalJson(body);
  } catch {
    throw new IndexRefused('malformed', 'index is not canonicalisable JSON');
  }
  if (!publicKey || !verify(canonical, sig.sig, publicKey)) throw new IndexRefused('bad-signature', 'index signature does not verify against the pinned registry key');
  const index = body as unknown as PackageIndex;
  if (index.name !== expectedName) throw new IndexRefused('wrong-package', `index is for "${String(index.name)}", not "${expectedName}"`);
  if (!index.versions || typeof index.versions !== 'object') throw new IndexRefused('malformed', 'index has no versions');
  for (const [v, entry] of Object.entries(index.versions)) {
    if (!entry || !HEX64.test(String(entry.sha256)) || typeof entry.keyId !== 'string') throw new IndexRefused('malformed', `index entry for ${v} is malformed`);
  }
  const timestamp = parseTime(index.timestamp, 'timestamp');
  const expires = parseTime(index.expires, 'expiry');
  if (expires <= now) throw new IndexRefused('expired', `index for ${expectedName} expired at ${index.expires}; the registry or a mirror is serving a stale copy`);
  if (seen) {
    if (timestamp < Date.parse(seen.timestamp)) {
      throw new IndexRefused('rollback', `index for ${expectedName} is older (${index.timestamp}) than one already seen (${seen.timestamp}); refusing a rollback`);
    }
    for (const [v, sha] of Object.entries(seen.versions)) {
      const now = index.versions[v];
      if (!now) throw new IndexRefused('version-removed', `${expectedName}@${v} was in an earlier index and is missing now`);
      if (now.sha256 !== sha) throw new IndexRefused('version-changed', `${expectedName}@${v} changed its sha256 since it was first seen`);
    }
  }
  return index;
}
