import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../home.ts';
import { fromB64 } from '../identity/keys.ts';
import { apiUrl, readCapped, registryRequest, RegistryRequestError } from '../skills/clawhub-client.ts';
import { ArchiveError, MAX_PLUGIN_TARBALL_BYTES } from './archive-path.ts';
import { IndexRefused, verifyIndex, type PackageIndex, type RegistryPublicKey, type SeenIndex } from './signed-index.ts';
import { compareSemver } from './semver.ts';
import { readTgz } from './tar.ts';

// The client half of the signed index (registry.md, `plugins install` steps 1–2):
// pin the registry key on first use, accept an index only when it verifies
// against the pin, has not expired and is not older than the last one seen,
// then download a release and check it against the index before unpacking it
// (safely) into a temp dir. `carapace plugins install` builds on these.

export interface RegistryClientState {
  /** `$CARAPACE_HOME/registry/`: pins.json (registry keys) and seen.json (last index per package). */
  dir: string;
}

export function registryClientState(home: string): RegistryClientState {
  return { dir: join(home, 'registry') };
}

type Pins = Record<string, RegistryPublicKey & { pinnedAt: string }>;
type Seen = Record<string, Record<string, SeenIndex>>;

function readJson<T>(path: string, fallback: T): T {
  if (!existsSync(path)) return fallback;
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

function origin(registry: string): string {
  return new URL(registry).origin;
}

async function getJson(url: URL): Promise<unknown> {
  const res = await registryRequest(url, 'application/json');
  return JSON.parse(new TextDecoder().decode(await readCapped(res, 1024 * 1024, `${url.pathname}`)));
}

export interface PinResult {
  key: RegistryPublicKey;
  /** True when this call pinned the key (first use): show it to the user. */
  firstUse: boolean;
}

/**
 * The registry key for `registry`: the pinned one, or — on first use — the one
 * the registry serves, which is then pinned. A later change of key is never
 * picked up silently: the pin stays until the user removes it.
 */
export async function pinnedRegistryKey(state: RegistryClientState, registry: string): Promise<PinResult> {
  const pinsPath = join(state.dir, 'pins.json');
  const pins = readJson<Pins>(pinsPath, {});
  const pinned = pins[origin(registry)];
  if (pinned) return { key: { alg: 'ed25519', keyId: pinned.keyId, publicKey: pinned.publicKey }, firstUse: false };
  const served = (await getJson(apiUrl(registry, '/api/v1/carapace/registry-key'))) as Partial<RegistryPublicKey>;
  if (served.alg !== 'ed25519' || !fromB64(served.publicKey, 32) || typeof served.keyId !== 'string') {
    throw new IndexRefused('malformed', 'the registry served a malformed registry key');
  }
  const key: RegistryPublicKey = { alg: 'ed25519', keyId: served.keyId, publicKey: served.publicKey! };
  pins[origin(registry)] = { ...key, pinnedAt: new Date().toISOString() };
  mkdirSync(state.dir, { recursive: true, mode: 0o700 });
  writeFileAtomic(pinsPath, JSON.stringify(pins, null, 2) + '\n');
  return { key, firstUse: true };
}

function indexPath(name: string): string {
  return name.startsWith('@') ? `/api/v1/carapace/plugins/${name.split('/').map(encodeURIComponent).join('/')}` : `/api/v1/carapace/plugins/${encodeURIComponent(name)}`;
}

/** Fetch and verify a package's signed index; on success remember it for rollback detection. */
export async function fetchVerifiedIndex(state: RegistryClientState, registry: string, name: string, opts: { now?: () => number } = {}): Promise<{ index: PackageIndex; pin: PinResult }> {
  const now = opts.now ?? Date.now;
  const pin = await pinnedRegistryKey(state, registry);
  const doc = await getJson(apiUrl(registry, `${indexPath(name)}/index`));
  const seenPath = join(state.dir, 'seen.json');
  const seen = readJson<Seen>(seenPath, {});
  const index = verifyIndex(doc, name, pin.key, now(), seen[origin(registry)]?.[name]);
  const versions: Record<string, string> = {};
  for (const [v, e] of Object.entries(index.versions)) versions[v] = e.sha256;
  seen[origin(registry)] = { ...seen[origin(registry)], [name]: { timestamp: index.timestamp, versions } };
  mkdirSync(state.dir, { recursive: true, mode: 0o700 });
  writeFileAtomic(seenPath, JSON.stringify(seen, null, 2) + '\n');
  return { index, pin };
}

export class ReleaseRefused extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.name = 'ReleaseRefused';
    this.reason = reason;
  }
}

/** Pick the version to install: the one asked for, or the index's latest (never a yanked one implicitly). */
export function chooseVersion(index: PackageIndex, wanted?: string): string {
  if (wanted) {
    if (!index.versions[wanted]) throw new ReleaseRefused('no-such-version', `${index.name}@${wanted} is not in the signed index`);
    return wanted;
  }
  const live = Object.keys(index.versions).filter((v) => !index.versions[v]!.yanked);
  if (live.length === 0) throw new ReleaseRefused('no-version', `${index.name} has no installable version`);
  const latest = index.latest && live.includes(index.latest) ? index.latest : live.sort(compareSemver).at(-1)!;
  return latest;
}

/** Download a release and check it byte-for-byte against the signed index. */
export async function downloadRelease(registry: string, index: PackageIndex, version: string): Promise<Uint8Array> {
  const entry = index.versions[version];
  if (!entry) throw new ReleaseRefused('no-such-version', `${index.name}@${version} is not in the signed index`);
  const url = apiUrl(registry, `${indexPath(index.name)}/${encodeURIComponent(version)}/tarball`);
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(60_000) });
  } catch (err) {
    throw new RegistryRequestError(0, `cannot reach the registry at ${url.origin}: ${(err as Error).message}`);
  }
  if (!res.ok) throw new RegistryRequestError(res.status, `download of ${index.name}@${version} failed with HTTP ${res.status}`);
  const bytes = await readCapped(res, MAX_PLUGIN_TARBALL_BYTES, `${index.name}@${version}`);
  const actual = createHash('sha256').update(bytes).digest('hex');
  if (actual !== entry.sha256) throw new ReleaseRefused('sha256-mismatch', `${index.name}@${version}: the download's sha256 ${actual} is not the ${entry.sha256} the signed index names`);
  return bytes;
}

/**
 * Unpack a release into a fresh temp dir under `parent` (refusing traversal,
 * absolute paths, links, devices and more than 50 MiB unpacked) and return it.
 * Nothing is written when the archive is refused.
 */
export function unpackRelease(tgz: Uint8Array, parent: string): string {
  let files;
  try {
    files = readTgz(tgz);
  } catch (err) {
    if (err instanceof ArchiveError) throw new ReleaseRefused(err.reason, `archive refused: ${err.message}`);
    throw err;
  }
  mkdirSync(parent, { recursive: true, mode: 0o700 });
  const dir = mkdtempSync(join(parent, '.unpack-'));
  try {
    for (const f of files) {
      const out = join(dir, f.path);
      mkdirSync(dirname(out), { recursive: true, mode: 0o700 });
      writeFileSync(out, f.bytes, { mode: 0o600, flag: 'wx' });
    }
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return dir;
}
