// `carapace plugins install NAME[@VER] --registry URL` (registry.md, steps 1–5):
// signed index against the pinned registry key, tarball sha256, safe unpack,
// manifest signature against the publisher key (trusted before, trusted now by
// --trust KEYID or an interactive yes), every file digest, nothing unlisted,
// no downgrade, consent for every permission not granted before, then an
// atomic switch of install.json with the previous version kept for --rollback.
// Every refusal is an InstallRefused naming its reason; nothing under
// plugins/<id>/ changes until the final rename and install.json write.

import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { HomePaths } from '../home.ts';
import { fromB64, keyIdOf } from '../identity/keys.ts';
import { IndexRefused } from '../registry/signed-index.ts';
import { chooseVersion, downloadRelease, fetchVerifiedIndex, registryClientState, ReleaseRefused, unpackRelease } from '../registry/plugin-fetch.ts';
import { apiUrl, RegistryRequestError } from '../skills/clawhub-client.ts';
import { addTrustedKey } from '../trust/trust-store.ts';
import { compareVersions, loadTrustStore, parseManifest, PluginRefusedError, verifyPlugin, type TrustedKey, type VerifiedPlugin } from './manifest.ts';
import { permissionList } from './permissions.ts';
import { pluginHome, readInstallRecord, writeInstallRecord, type InstallRecord } from './installed.ts';
import { commitInstall, InstallRefused } from './install.ts';

export { InstallRefused };

export interface RegistryInstallOptions {
  registry: string;
  name: string;
  version?: string;
  /** The publisher keyId the user vouches for (`--trust KEYID`). */
  trustKeyId?: string;
  /** Consent to the permissions shown (`--yes`). */
  yes?: boolean;
  allowDowngrade?: boolean;
  allowWorker?: boolean;
  /** Ask the user (a TTY); absent when nobody can answer, and then only flags decide. */
  confirm?: (question: string) => Promise<boolean>;
  /** Lines to show the user as the install proceeds (registry key pinned, what it asks for). */
  say?: (line: string) => void;
  now?: () => number;
}

export interface RegistryInstallResult {
  id: string;
  version: string;
  previousVersion: string | null;
  unchanged: boolean;
  keyId: string;
  registryKeyId: string;
  registryKeyPinnedNow: boolean;
  requested: string[];
  added: string[];
  granted: string[];
  newlyTrusted: boolean;
}

const SPEC = /^((?:@[a-z0-9][a-z0-9-]{0,63}\/)?[a-z0-9][a-z0-9-]{0,63})(?:@([0-9A-Za-z.+-]{1,64}))?$/;

/** `name`, `name@1.2.3`, `@scope/name@1.2.3` → parts; null when it is not a registry spec. */
export function parseRegistrySpec(spec: string): { name: string; version?: string } | null {
  const m = SPEC.exec(spec);
  return m ? { name: m[1]!, ...(m[2] ? { version: m[2] } : {}) } : null;
}

async function publisherKey(registry: string, keyId: string): Promise<Uint8Array> {
  let res: Response;
  try {
    res = await fetch(apiUrl(registry, `/api/v1/carapace/keys/${keyId}`), { signal: AbortSignal.timeout(15_000) });
  } catch (err) {
    throw new InstallRefused('unreachable', `cannot reach the registry for publisher key ${keyId}: ${(err as Error).message}`);
  }
  if (!res.ok) throw new InstallRefused('unknown-key', `the registry does not know publisher key ${keyId} (HTTP ${res.status})`);
  const body = (await res.json()) as { publicKey?: unknown };
  const pub = fromB64(body.publicKey, 32);
  // The keyId is a hash of the key: the registry cannot substitute another one.
  if (!pub || keyIdOf(pub) !== keyId) throw new InstallRefused('unknown-key', `the registry served a public key that is not ${keyId}`);
  return pub;
}

function refusalFrom(err: unknown): never {
  if (err instanceof InstallRefused) throw err;
  if (err instanceof IndexRefused || err instanceof ReleaseRefused || err instanceof PluginRefusedError) throw new InstallRefused(err.reason, err.message);
  if (err instanceof RegistryRequestError) throw new InstallRefused(err.status === 404 ? 'not-found' : 'registry-error', err.message);
  throw err;
}

export async function installFromRegistry(paths: HomePaths, opts: RegistryInstallOptions): Promise<RegistryInstallResult> {
  const say = opts.say ?? (() => {});
  const state = registryClientState(paths.root);
  let index, pin, version: string;
  try {
    ({ index, pin } = await fetchVerifiedIndex(state, opts.registry, opts.name, { now: opts.now }));
    version = chooseVersion(index, opts.version);
  } catch (err) {
    refusalFrom(err);
  }
  if (pin.firstUse) say(`pinned registry key ${pin.key.keyId} for ${new URL(opts.registry).origin} (first use; a different key later is refused)`);
  const previous = readInstallRecord(paths.pluginsDir, opts.name);
  const base: Omit<RegistryInstallResult, 'unchanged' | 'requested' | 'added' | 'granted' | 'newlyTrusted'> = {
    id: opts.name,
    version,
    previousVersion: previous?.version ?? null,
    keyId: index.versions[version]!.keyId,
    registryKeyId: pin.key.keyId,
    registryKeyPinnedNow: pin.firstUse,
  };
  if (previous && previous.version === version && previous.sha256 === index.versions[version]!.sha256) {
    return { ...base, unchanged: true, requested: previous.granted, added: [], granted: previous.granted, newlyTrusted: false };
  }
  // Refused before any download: the index already says which version it is.
  if (previous && !opts.allowDowngrade && compareVersions(version, previous.version) < 0) {
    throw new InstallRefused('downgrade', `${opts.name} ${version} is older than the installed ${previous.version}; pass --allow-downgrade to accept`);
  }

  const staging = join(paths.pluginsDir, '.staging');
  let dir: string | null = null;
  try {
    let tgz: Uint8Array;
    try {
      tgz = await downloadRelease(opts.registry, index, version);
      dir = unpackRelease(tgz, staging);
    } catch (err) {
      refusalFrom(err);
    }
    const manifestFile = join(dir, 'plugin.json');
    if (!existsSync(manifestFile)) throw new InstallRefused('manifest-missing', `${opts.name}@${version}: the release has no plugin.json`);
    const text = readFileSync(manifestFile, 'utf8');
    let manifest;
    try {
      manifest = parseManifest(text);
    } catch (err) {
      refusalFrom(err);
    }
    if (manifest.id !== opts.name) throw new InstallRefused('wrong-package', `the release of ${opts.name} carries a manifest for ${manifest.id}`);
    if (manifest.version !== version) {
      throw new InstallRefused('version-mismatch', `the release of ${opts.name}@${version} carries a manifest for version ${manifest.version} (a mix of releases)`);
    }
    const keyId = manifest.signature?.keyId;
    if (!keyId) throw new InstallRefused('unsigned', `${opts.name}@${version} is unsigned: its manifest has no signature`);
    if (keyId !== base.keyId) {
      throw new InstallRefused('key-mismatch', `${opts.name}@${version} is signed by ${keyId}, but the signed index says ${base.keyId} published it`);
    }
    if (previous?.keyId && previous.keyId !== keyId && opts.trustKeyId !== keyId) {
      throw new InstallRefused('publisher-key-changed', `${opts.name}@${version} is signed by ${keyId}, not ${previous.keyId} which signed the installed ${previous.version}; if the publisher confirms the new key, pass --trust ${keyId}`);
    }

    const { store } = loadTrustStore(paths.trustDir);
    const trust = new Map<string, TrustedKey>(store);
    let newKey: Uint8Array | null = null;
    if (!trust.has(keyId)) {
      let vouched = opts.trustKeyId === keyId;
      if (!vouched && opts.trustKeyId !== undefined) {
        throw new InstallRefused('unknown-key', `${opts.name}@${version} is signed by ${keyId}, not by ${opts.trustKeyId} which --trust names`);
      }
      newKey = await publisherKey(opts.registry, keyId);
      if (!vouched && opts.confirm) vouched = await opts.confirm(`${opts.name} is signed by publisher key ${keyId}, not trusted yet. Trust it?`);
      if (!vouched) {
        throw new InstallRefused('unknown-key', `${opts.name}@${version} is signed by publisher key ${keyId}, which is not trusted; check the keyId with the publisher and pass --trust ${keyId}`, { keyId });
      }
      trust.set(keyId, { keyId, publicKey: newKey, firstParty: false, source: opts.registry });
    }

    const runtime = manifest.runtime ?? 'isolate';
    const requested = permissionList(manifest.permissions, runtime);
    let verified: VerifiedPlugin;
    try {
      verified = verifyPlugin(text, dir, {
        trust,
        source: 'installed',
        granted: requested.filter((p) => p !== 'worker'),
        allowWorker: opts.allowWorker || previous?.allowWorker === true,
        ignoreFiles: ['plugin.json'],
        installedVersion: previous?.version,
        allowDowngrade: opts.allowDowngrade,
      });
    } catch (err) {
      refusalFrom(err);
    }

    // Consent: everything on a first install; on an update, what was not granted before.
    const before = new Set(previous?.granted ?? []);
    const added = requested.filter((p) => !before.has(p));
    say(`${manifest.id} ${version} (${manifest.kind}, runtime ${runtime}) signed by ${keyId}${previous ? `, replacing ${previous.version}` : ''}`);
    say(requested.length ? `requests:\n${requested.map((p) => `  ${p}${previous && added.includes(p) ? '   (new)' : ''}`).join('\n')}` : 'requests: (no permissions)');
    if (runtime === 'worker') say('WARNING: the worker runtime runs full Node.js in a thread of the gateway: it can reach whatever the gateway process can (files, network, memory).');
    const needsConsent = !previous || added.length > 0;
    if (needsConsent && !opts.yes) {
      const question = previous ? `the update asks for ${added.length} new permission(s): ${added.join(', ')}. Accept?` : `install ${manifest.id} ${version} with these permissions?`;
      const ok = opts.confirm ? await opts.confirm(question) : false;
      if (!ok) {
        throw new InstallRefused(
          'consent-required',
          previous
            ? `${manifest.id} ${version} asks for permissions ${previous.version} did not have: ${added.join(', ')}; re-run with --yes to accept them`
            : `${manifest.id} ${version} was not installed: re-run with --yes to accept ${requested.length ? 'its permissions' : 'it'}`,
          { added },
        );
      }
    }

    const granted = [...new Set([...requested, ...(opts.allowWorker || previous?.allowWorker ? ['worker'] : [])])].filter((p) => p !== 'worker' || runtime === 'worker');
    if (newKey) addTrustedKey(paths.trustDir, { alg: 'ed25519', keyId, publicKey: Buffer.from(newKey).toString('base64') });
    commitInstall(paths, verified, text, previous, {
      granted,
      allowWorker: opts.allowWorker === true || previous?.allowWorker === true,
      installedAt: opts.now?.() ?? Date.now(),
      keyId,
      registry: new URL(opts.registry).origin,
      sha256: index.versions[version]!.sha256,
      digest: verified.digest,
    });
    return { ...base, unchanged: false, requested, added, granted, newlyTrusted: newKey !== null };
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

/** Switch an installed plugin back to the version it replaced (kept on disk), after verifying it again. */
export function rollbackPlugin(paths: HomePaths, id: string): { id: string; version: string; replaced: string } {
  const current = readInstallRecord(paths.pluginsDir, id);
  if (!current) throw new InstallRefused('not-installed', `plugin ${id} is not installed`);
  const prev = current.previous;
  if (!prev) throw new InstallRefused('no-previous-version', `plugin ${id} has no previous version to roll back to`);
  const dir = join(pluginHome(paths.pluginsDir, id), prev.version);
  if (!existsSync(join(dir, 'plugin.json'))) throw new InstallRefused('no-previous-version', `plugin ${id}: the previous version ${prev.version} is no longer on disk`);
  const { store } = loadTrustStore(paths.trustDir);
  try {
    verifyPlugin(readFileSync(join(dir, 'plugin.json'), 'utf8'), dir, { trust: store, source: 'installed', granted: prev.granted, allowWorker: prev.allowWorker, ignoreFiles: ['plugin.json'] });
  } catch (err) {
    refusalFrom(err);
  }
  const { previous: _drop, ...curFlat } = current;
  writeInstallRecord(paths.pluginsDir, { ...prev, previous: curFlat as InstallRecord });
  return { id, version: prev.version, replaced: current.version };
}
