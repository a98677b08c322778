// `npm run sign-manifests`: recompute the `files` digests of every bundled plugin
// folder and re-sign manifests/<kind>.<id>.json with the first-party key, read
// from $CARAPACE_SIGNING_KEY or ../shared/signing/first-party.key.json (never
// from, nor copied into, this repository).

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { readKeyFile, keyIdOf, type KeyPair } from '../identity/keys.ts';
import { bundledPlugins } from './installed.ts';
import { computeFiles, signManifest } from './sign.ts';
import { REPO_ROOT, FIRST_PARTY_KEY_FILE, type Manifest } from './manifest.ts';

export function findSigningKey(env: NodeJS.ProcessEnv = process.env, root = REPO_ROOT): string {
  if (env.CARAPACE_SIGNING_KEY) return resolve(env.CARAPACE_SIGNING_KEY);
  // ../shared from the repo root; from a worktree (…/wt/<area>) the shared folder sits one level higher.
  let dir = resolve(root);
  for (let i = 0; i < 4; i++) {
    const candidate = join(dirname(dir), 'shared', 'signing', 'first-party.key.json');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new Error('no signing key: set CARAPACE_SIGNING_KEY or put it at ../shared/signing/first-party.key.json');
}

export function signBundled(kp: KeyPair, root = REPO_ROOT): string[] {
  const signed: string[] = [];
  for (const loc of bundledPlugins(root)) {
    const m = JSON.parse(readFileSync(loc.manifestFile, 'utf8')) as Manifest;
    m.files = computeFiles(loc.dir);
    const out = signManifest(m, kp);
    writeFileSync(loc.manifestFile, JSON.stringify(out, null, 2) + '\n');
    signed.push(loc.manifestFile);
  }
  return signed;
}

if (import.meta.main) {
  const file = findSigningKey();
  const kp = readKeyFile(file);
  const expected = JSON.parse(readFileSync(FIRST_PARTY_KEY_FILE, 'utf8')) as { keyId: string };
  if (keyIdOf(kp.publicKey) !== expected.keyId) {
    process.stderr.write(`warning: ${file} is key ${keyIdOf(kp.publicKey)}, not the first-party key ${expected.keyId}; bundled plugins will be refused\n`);
  }
  for (const f of signBundled(kp)) process.stdout.write(`signed ${f}\n`);
}
