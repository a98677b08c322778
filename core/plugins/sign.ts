// Producing signed manifests: the digests of a plugin folder and the ed25519
// signature over the canonical manifest. Used by `npm run sign-manifests`, by
// `carapace plugin sign`, and by tests with throwaway keys.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sign, keyIdOf, type KeyPair } from '../identity/keys.ts';
import { fileDigest, listFiles, signingBytes, type Manifest } from './manifest.ts';

/** `files` for every regular file under dir (minus `ignore`), in sorted order. */
export function computeFiles(dir: string, ignore: readonly string[] = []): Record<string, string> {
  const { files, unsafe } = listFiles(dir);
  if (unsafe.length) throw new Error(`${join(dir, unsafe[0])} is a symlink or special file; plugins hold regular files only`);
  const out: Record<string, string> = {};
  for (const f of files) if (!ignore.includes(f)) out[f] = fileDigest(readFileSync(join(dir, f)));
  return out;
}

/** A copy of the manifest with `publisher.keyId` set and a fresh signature. */
export function signManifest(m: Omit<Manifest, 'signature'> & { signature?: unknown }, kp: KeyPair): Manifest {
  const keyId = keyIdOf(kp.publicKey);
  const { signature: _old, ...rest } = m;
  const unsigned = { ...rest, publisher: { ...(rest.publisher ?? { name: 'unknown' }), keyId } } as Manifest;
  return { ...unsigned, signature: { alg: 'ed25519', keyId, sig: sign(signingBytes(unsigned), kp) } };
}

export function publicKeyFile(kp: KeyPair): { alg: 'ed25519'; keyId: string; publicKey: string } {
  return { alg: 'ed25519', keyId: keyIdOf(kp.publicKey), publicKey: kp.publicKeyB64 };
}
