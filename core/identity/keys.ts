import { createHash, createPrivateKey, createPublicKey, randomBytes, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { writeFileAtomic } from '../home.ts';

/** The on-disk shape of every key file (config.md): gateway, owner, publisher keys. */
export interface KeyFile {
  alg: 'ed25519';
  id: string;
  publicKey: string;
  seed: string;
}

export interface KeyPair {
  id: string;
  publicKey: Uint8Array;
  secretKey: Uint8Array;
  publicKeyB64: string;
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** deviceId / gatewayId: lowercase hex sha256 of the raw 32-byte public key. */
export function deviceIdOf(publicKey: Uint8Array): string {
  return sha256Hex(publicKey);
}

/** Publisher keyId: the first 16 hex chars of sha256(publicKey). */
export function keyIdOf(publicKey: Uint8Array): string {
  return sha256Hex(publicKey).slice(0, 16);
}

export function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64');
}

/** Strict base64 decode: returns null unless the text is canonical base64 of exactly `length` bytes. */
export function fromB64(text: unknown, length: number): Uint8Array | null {
  if (typeof text !== 'string' || text.length !== Math.ceil(length / 3) * 4) return null;
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return null;
  const bytes = Buffer.from(text, 'base64');
  if (bytes.length !== length || bytes.toString('base64') !== text) return null;
  return new Uint8Array(bytes);
}

// Ed25519 runs on Node's native implementation (OpenSSL): tweetnacl's pure JS takes
// ~3–8 ms per key derivation or signature and leaves garbage behind (start-up
// derives the gateway key; the audit log signs on every append). Same keys, same
// (deterministic) signatures; secretKey keeps tweetnacl's layout, seed ‖ public key.
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
// DER prefix of an Ed25519 SubjectPublicKeyInfo: the raw 32-byte key follows it.
const ED25519_SPKI = Buffer.from('302a300506032b6570032100', 'hex');
const privateKeys = new WeakMap<KeyPair, KeyObject>();

function privateKeyObject(seed: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

export function keyPairFromSeed(seed: Uint8Array): KeyPair {
  const key = privateKeyObject(seed);
  const publicKey = new Uint8Array(createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(ED25519_SPKI.length));
  const secretKey = new Uint8Array(64);
  secretKey.set(seed);
  secretKey.set(publicKey, 32);
  const kp: KeyPair = { id: deviceIdOf(publicKey), publicKey, secretKey, publicKeyB64: b64(publicKey) };
  privateKeys.set(kp, key);
  return kp;
}

export function generateKeyPair(): KeyPair {
  return keyPairFromSeed(randomBytes(32));
}

export function toKeyFile(kp: KeyPair): KeyFile {
  return { alg: 'ed25519', id: kp.id, publicKey: kp.publicKeyB64, seed: b64(kp.secretKey.subarray(0, 32)) };
}

export function parseKeyFile(text: string, source: string): KeyPair {
  let parsed: Partial<KeyFile>;
  try {
    parsed = JSON.parse(text) as Partial<KeyFile>;
  } catch {
    throw new Error(`${source}: not valid JSON`);
  }
  const seed = fromB64(parsed.seed, 32);
  if (parsed.alg !== 'ed25519' || !seed) throw new Error(`${source}: not an ed25519 key file (needs alg and a 32-byte base64 seed)`);
  const kp = keyPairFromSeed(seed);
  if (parsed.publicKey !== undefined && parsed.publicKey !== kp.publicKeyB64) {
    throw new Error(`${source}: publicKey does not match seed`);
  }
  return kp;
}

export function readKeyFile(path: string): KeyPair {
  return parseKeyFile(readFileSync(path, 'utf8'), path);
}

export function writeKeyFile(path: string, kp: KeyPair): void {
  writeFileAtomic(path, JSON.stringify(toKeyFile(kp), null, 2) + '\n', 0o600);
}

/** Load a key file, creating it (mode 0600) on first use. */
export function loadOrCreateKey(path: string): KeyPair {
  if (existsSync(path)) return readKeyFile(path);
  const kp = generateKeyPair();
  writeKeyFile(path, kp);
  return kp;
}

export function fileMode(path: string): number {
  return statSync(path).mode & 0o777;
}

export function sign(message: string | Uint8Array, kp: KeyPair): string {
  let key = privateKeys.get(kp);
  if (!key) {
    key = privateKeyObject(kp.secretKey.subarray(0, 32));
    privateKeys.set(kp, key);
  }
  return b64(cryptoSign(null, typeof message === 'string' ? Buffer.from(message, 'utf8') : message, key));
}

const keyObjects = new Map<string, KeyObject>();

function publicKeyObject(raw: Uint8Array): KeyObject {
  const id = Buffer.from(raw).toString('base64');
  let key = keyObjects.get(id);
  if (!key) {
    key = createPublicKey({ key: Buffer.concat([ED25519_SPKI, raw]), format: 'der', type: 'spki' });
    if (keyObjects.size >= 256) keyObjects.clear();
    keyObjects.set(id, key);
  }
  return key;
}

/**
 * Verify a detached ed25519 signature; malformed inputs are simply "not valid".
 * Native verification also rejects the non-canonical signatures (S ≥ L) that
 * tweetnacl would accept.
 */
export function verify(message: string | Uint8Array, signatureB64: unknown, publicKey: Uint8Array): boolean {
  const sig = fromB64(signatureB64, 64);
  if (!sig || publicKey.length !== 32) return false;
  const bytes = typeof message === 'string' ? Buffer.from(message, 'utf8') : message;
  try {
    return cryptoVerify(null, bytes, publicKeyObject(publicKey), sig);
  } catch {
    return false; // not a valid point, for instance
  }
}
