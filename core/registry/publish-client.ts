// The publisher's side of the registry's plugin routes: register the public
// key once (PUT /api/v1/carapace/keys, idempotent for its owner), then upload
// the release — plugin.json and exactly the files it lists — as a .tgz.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { b64, type KeyPair } from '../identity/keys.ts';
import { apiUrl, RegistryRequestError } from '../skills/clawhub-client.ts';
import type { Manifest } from '../plugins/manifest.ts';
import { writeTgz } from './tar.ts';

async function call(url: URL, init: RequestInit): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal: AbortSignal.timeout(60_000) });
  } catch (err) {
    throw new RegistryRequestError(0, `cannot reach the registry at ${url.origin}: ${(err as Error).message}`);
  }
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  if (!res.ok) {
    const message = (body as { message?: string })?.message ?? text.slice(0, 300);
    throw new RegistryRequestError(res.status, `HTTP ${res.status}: ${message}`);
  }
  return body;
}

export async function registerPublisherKey(registry: string, token: string, kp: KeyPair): Promise<{ keyId: string; user: string }> {
  return (await call(apiUrl(registry, '/api/v1/carapace/keys'), {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ alg: 'ed25519', publicKey: b64(kp.publicKey) }),
  })) as { keyId: string; user: string };
}

/** The release tarball of a signed plugin folder: plugin.json plus the listed files, nothing else. */
export function releaseTarball(dir: string, manifest: Manifest): Buffer {
  return writeTgz([
    { path: 'plugin.json', bytes: readFileSync(join(dir, 'plugin.json')) },
    ...Object.keys(manifest.files)
      .sort()
      .map((f) => ({ path: f, bytes: readFileSync(join(dir, f)) })),
  ]);
}

export async function publishRelease(registry: string, token: string, tgz: Buffer): Promise<{ name: string; version: string; sha256: string; keyId: string }> {
  return (await call(apiUrl(registry, '/api/v1/carapace/plugins'), {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/gzip' },
    body: new Uint8Array(tgz),
  })) as { name: string; version: string; sha256: string; keyId: string };
}
