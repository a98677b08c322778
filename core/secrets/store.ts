import nacl from 'tweetnacl';
import { scryptSync, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import type { HomePaths } from '../home.ts';
import { writeFileAtomic } from '../home.ts';
import { fromB64, b64 } from '../identity/keys.ts';
import { registerSecretValue } from './known.ts';
import type { SecretsSource } from './source.ts';
import { holdLockFile } from '../gateway/lock.ts';

// The encrypted secrets store (config.md): secrets.enc is one nacl secretbox over
// the JSON map of names to values. The key is identity/secrets.key (0600), or is
// derived with scrypt from CARAPACE_PASSPHRASE when that is set — then nothing on
// disk alone opens it. Values reach only the kernel's egress; this module is the
// only reader and writer of secrets.enc.

export const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const SCRYPT = { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

interface SealedFile {
  v: 1;
  kdf: 'keyfile' | 'scrypt';
  salt?: string;
  nonce: string;
  box: string;
}

export class SecretsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretsError';
  }
}

export interface SecretsStore extends SecretsSource {
  names(): string[];
  set(name: string, value: string): void;
  remove(name: string): boolean;
}

function deriveKey(paths: HomePaths, kdf: SealedFile['kdf'], salt: Uint8Array | null, env: NodeJS.ProcessEnv): Uint8Array {
  if (kdf === 'scrypt') {
    const pass = env.CARAPACE_PASSPHRASE;
    if (!pass) throw new SecretsError('secrets.enc is sealed with a passphrase: set CARAPACE_PASSPHRASE');
    return new Uint8Array(scryptSync(pass, salt!, 32, SCRYPT));
  }
  if (!existsSync(paths.secretsKey)) {
    const key = randomBytes(32);
    try {
      // Exclusive: of two processes making the first key, one wins and the other reads it.
      writeFileSync(paths.secretsKey, b64(key) + '\n', { mode: 0o600, flag: 'wx' });
      return new Uint8Array(key);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  const key = fromB64(readFileSync(paths.secretsKey, 'utf8').trim(), 32);
  if (!key) throw new SecretsError(`${paths.secretsKey} is not a 32-byte base64 key`);
  return key;
}

/**
 * Open the store of a home. Reads are cached by file mtime, so a gateway sees a
 * `carapace secrets set` made while it runs without restarting.
 */
export function openSecrets(paths: HomePaths, env: NodeJS.ProcessEnv = process.env): SecretsStore {
  let cache: { mtimeMs: number; values: Map<string, string> } | null = null;

  function load(): Map<string, string> {
    if (!existsSync(paths.secrets)) return new Map();
    const mtimeMs = statSync(paths.secrets).mtimeMs;
    if (cache && cache.mtimeMs === mtimeMs) return cache.values;
    let sealed: SealedFile;
    try {
      sealed = JSON.parse(readFileSync(paths.secrets, 'utf8')) as SealedFile;
    } catch {
      throw new SecretsError(`${paths.secrets} is not a secrets file`);
    }
    const nonce = fromB64(sealed.nonce, nacl.secretbox.nonceLength);
    const box = typeof sealed.box === 'string' ? Buffer.from(sealed.box, 'base64') : null;
    const salt = sealed.kdf === 'scrypt' ? fromB64(sealed.salt, 16) : null;
    if (sealed.v !== 1 || !nonce || !box || (sealed.kdf !== 'keyfile' && sealed.kdf !== 'scrypt') || (sealed.kdf === 'scrypt' && !salt)) {
      throw new SecretsError(`${paths.secrets} is not a version-1 secrets file`);
    }
    const plain = nacl.secretbox.open(new Uint8Array(box), nonce, deriveKey(paths, sealed.kdf, salt, env));
    if (!plain) throw new SecretsError(`${paths.secrets} cannot be opened with this key${sealed.kdf === 'scrypt' ? ' (wrong CARAPACE_PASSPHRASE?)' : ''}`);
    const values = new Map(Object.entries(JSON.parse(Buffer.from(plain).toString('utf8')) as Record<string, string>));
    for (const v of values.values()) registerSecretValue(v);
    cache = { mtimeMs, values };
    return values;
  }

  function save(values: Map<string, string>): void {
    const kdf: SealedFile['kdf'] = env.CARAPACE_PASSPHRASE ? 'scrypt' : 'keyfile';
    const salt = kdf === 'scrypt' ? new Uint8Array(randomBytes(16)) : null;
    const nonce = nacl.randomBytes(nacl.secretbox.nonceLength);
    const plain = new TextEncoder().encode(JSON.stringify(Object.fromEntries(values)));
    const box = nacl.secretbox(plain, nonce, deriveKey(paths, kdf, salt, env));
    const sealed: SealedFile = { v: 1, kdf, ...(salt ? { salt: b64(salt) } : {}), nonce: b64(nonce), box: b64(box) };
    writeFileAtomic(paths.secrets, JSON.stringify(sealed) + '\n', 0o600);
    cache = null;
  }

  /** Read, change, write with the store locked: two `secrets set` at once would each write what they read. */
  function change<T>(edit: (values: Map<string, string>) => T): T {
    const release = holdLockFile(`${paths.secrets}.lock`, {
      waitMs: 5_000,
      busy: (holder) => `another carapace process (pid ${holder}) is changing the secrets store; try again in a moment`,
    });
    try {
      cache = null; // what another process wrote since our last read counts
      return edit(new Map(load()));
    } finally {
      release();
    }
  }

  return {
    get: (name) => load().get(name),
    names: () => [...load().keys()].sort(),
    set(name, value) {
      if (!SECRET_NAME.test(name)) throw new SecretsError(`"${name}" is not a valid secret name (letters, digits, _; not starting with a digit)`);
      if (value.length === 0) throw new SecretsError('empty value: nothing to store');
      change((values) => {
        values.set(name, value);
        registerSecretValue(value);
        save(values);
      });
    },
    remove(name) {
      return change((values) => {
        const had = values.delete(name);
        if (had) save(values);
        return had;
      });
    },
  };
}
