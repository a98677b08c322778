import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../home.ts';
import { fromB64, keyIdOf } from '../identity/keys.ts';

// Trusted publisher keys: `$CARAPACE_HOME/trust/<keyId>.json`, public part only,
// in the shape of manifests/first-party.pub.json. This module is their one writer.

export interface TrustedKey {
  alg: 'ed25519';
  keyId: string;
  publicKey: string;
}

export class TrustError extends Error {}

const KEY_ID = /^[0-9a-f]{16}$/;

/** Accept a key file (identity shape, with or without seed) or a .pub.json; keep only the public part. */
export function publicPartOf(text: string, source: string): TrustedKey {
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new TrustError(`${source}: not valid JSON`);
  }
  if (parsed.alg !== 'ed25519') throw new TrustError(`${source}: not an ed25519 key (alg must be "ed25519")`);
  const pub = fromB64(parsed.publicKey, 32);
  if (!pub) throw new TrustError(`${source}: publicKey must be 32 bytes of base64`);
  const keyId = keyIdOf(pub);
  if (parsed.keyId !== undefined && parsed.keyId !== keyId) throw new TrustError(`${source}: keyId ${String(parsed.keyId)} does not match its public key (${keyId})`);
  return { alg: 'ed25519', keyId, publicKey: parsed.publicKey as string };
}

export function addTrustedKey(trustDir: string, key: TrustedKey): { path: string; existed: boolean } {
  const path = join(trustDir, `${key.keyId}.json`);
  const existed = existsSync(path);
  writeFileAtomic(path, JSON.stringify(key, null, 2) + '\n', 0o600);
  return { path, existed };
}

export function removeTrustedKey(trustDir: string, keyId: string): void {
  if (!KEY_ID.test(keyId)) throw new TrustError(`"${keyId}" is not a keyId (16 hex characters)`);
  const path = join(trustDir, `${keyId}.json`);
  if (!existsSync(path)) throw new TrustError(`key ${keyId} is not trusted`);
  rmSync(path);
}

export function listTrustedKeys(trustDir: string): (TrustedKey & { problem?: string })[] {
  if (!existsSync(trustDir)) return [];
  const out: (TrustedKey & { problem?: string })[] = [];
  for (const name of readdirSync(trustDir).sort()) {
    const m = /^([0-9a-f]{16})\.json$/.exec(name);
    if (!m) continue;
    try {
      const key = publicPartOf(readFileSync(join(trustDir, name), 'utf8'), name);
      out.push(key.keyId === m[1] ? key : { ...key, problem: `file name says ${m[1]}` });
    } catch (err) {
      out.push({ alg: 'ed25519', keyId: m[1]!, publicKey: '', problem: (err as Error).message });
    }
  }
  return out;
}
