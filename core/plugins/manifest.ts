// Reading and verifying plugin manifests (manifest.md): schema, signature over the
// canonical JSON, trusted keys, file digests. Everything a runtime may load comes
// out of `verifyPlugin` as bytes that were hashed here, so there is no window
// between "checked" and "loaded" for a file to change.

import { Ajv } from 'ajv';
import { kernelAjv, pointerOf, reasonOf } from '../schema.ts';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { satisfies, validRange } from 'semver';
import { VERSION } from '../version.ts';
import { fromB64, keyIdOf, verify } from '../identity/keys.ts';
import { canonicalJson } from './canonical-json.ts';
import { manifestSchema } from './manifest-schema.ts';
import { permissionList, type Permissions } from './permissions.ts';
import type { JsonSchema, ToolDef, ModelInfo, ChannelCapabilities } from '../plugin-api.ts';

export type PluginKind = 'channel' | 'provider' | 'memory' | 'tool';
export type PluginRuntime = 'isolate' | 'worker';

export interface Limits {
  memoryMb?: number;
  callTimeoutMs?: number;
  cpuMsPerCall?: number;
  maxResponseBytes?: number;
  maxPendingCalls?: number;
}

export interface Manifest {
  schema: 'carapace.plugin/v1';
  id: string;
  name: string;
  version: string;
  kind: PluginKind;
  description?: string;
  publisher?: { name: string; keyId?: string };
  runtime?: PluginRuntime;
  entry: string;
  files: Record<string, string>;
  engines?: { carapace?: string };
  permissions?: Permissions;
  limits?: Limits;
  config?: JsonSchema;
  provides?: { tools?: ToolDef[]; models?: ModelInfo[]; channel?: Partial<ChannelCapabilities> };
  signature?: { alg: 'ed25519'; keyId: string; sig: string };
}

export type RefusalReason =
  | 'unreadable'
  | 'schema'
  | 'unsigned'
  | 'unknown-key'
  | 'bad-signature'
  | 'file-hash-mismatch'
  | 'file-not-listed'
  | 'downgrade'
  | 'permission-not-granted'
  | 'worker-not-allowed'
  | 'engine-mismatch'
  | 'config-invalid';

/** Why a plugin was not loaded. One class, one `reason` per kind of refusal; nothing else stops. */
export class PluginRefusedError extends Error {
  readonly reason: RefusalReason;
  readonly pluginId: string | undefined;
  readonly pointer: string | undefined;
  readonly details: Record<string, unknown>;

  constructor(reason: RefusalReason, message: string, opts: { pluginId?: string; pointer?: string; details?: Record<string, unknown> } = {}) {
    super(message);
    this.name = 'PluginRefusedError';
    this.reason = reason;
    this.pluginId = opts.pluginId;
    this.pointer = opts.pointer;
    this.details = opts.details ?? {};
  }
}

// ---------------------------------------------------------------- schema

const validateManifestShape = kernelAjv.compile(manifestSchema);

/** Parse and schema-check manifest text; throws `schema` refusals with a JSON pointer. */
export function parseManifest(text: string): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new PluginRefusedError('schema', `manifest is not valid JSON: ${(err as Error).message}`, { pointer: '' });
  }
  if (!validateManifestShape(raw)) {
    const e = validateManifestShape.errors![0];
    const pointer = pointerOf(e);
    const id = typeof (raw as { id?: unknown })?.id === 'string' ? (raw as { id: string }).id : undefined;
    throw new PluginRefusedError('schema', `manifest schema error at "${pointer}": ${e.message}`, { pointer, pluginId: id });
  }
  const m = raw as unknown as Manifest;
  if (!Object.hasOwn(m.files, m.entry)) {
    throw new PluginRefusedError('schema', `manifest schema error at "/entry": entry ${m.entry} is not listed in files`, { pointer: '/entry', pluginId: m.id });
  }
  if (m.config !== undefined) {
    try {
      configValidator(m);
    } catch (err) {
      throw new PluginRefusedError('schema', `manifest schema error at "/config": not a usable JSON schema (${(err as Error).message})`, { pointer: '/config', pluginId: m.id });
    }
  }
  return m;
}

const configAjv = new Ajv({ allErrors: false, strict: false, useDefaults: true });
const configValidators = new WeakMap<Manifest, ReturnType<typeof configAjv.compile>>();

function configValidator(m: Manifest): ReturnType<typeof configAjv.compile> {
  let v = configValidators.get(m);
  if (!v) {
    v = configAjv.compile(m.config ?? { type: 'object' });
    configValidators.set(m, v);
  }
  return v;
}

/** The first way `config` fails the manifest's `config` schema (its JSON pointer, why), or null; `config` gets the schema's defaults. */
export function pluginConfigProblem(m: Manifest, config: Record<string, unknown>): { pointer: string; reason: string } | null {
  const v = configValidator(m);
  return v(config) ? null : { pointer: pointerOf(v.errors![0]), reason: reasonOf(v.errors![0]) };
}

/** The user's config for a plugin, validated (and defaulted) against the manifest's `config` schema. */
export function validatePluginConfig(m: Manifest, config: unknown): Record<string, unknown> {
  const value = structuredClone(config ?? {}) as Record<string, unknown>;
  const problem = pluginConfigProblem(m, value);
  if (problem) {
    throw new PluginRefusedError('config-invalid', `config for plugin ${m.id} is invalid at "${problem.pointer}": ${problem.reason}`, { pluginId: m.id, pointer: problem.pointer });
  }
  return value;
}

// ---------------------------------------------------------------- signature

/** The bytes the signature covers: canonical JSON of the manifest without `signature`. */
export function signingBytes(m: Manifest): Uint8Array {
  const { signature: _omit, ...rest } = m;
  return new TextEncoder().encode(canonicalJson(rest));
}

/** An identifier for a manifest that does not depend on its signature (signatures are malleable). */
export function manifestDigest(m: Manifest): string {
  return createHash('sha256').update(signingBytes(m)).digest('hex');
}

export interface TrustedKey {
  keyId: string;
  publicKey: Uint8Array;
  firstParty: boolean;
  source: string;
}

export type TrustStore = ReadonlyMap<string, TrustedKey>;

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const FIRST_PARTY_KEY_FILE = join(REPO_ROOT, 'manifests', 'first-party.pub.json');

function parsePublicKeyFile(text: string, source: string): { keyId: string; publicKey: Uint8Array } {
  const parsed = JSON.parse(text) as { alg?: unknown; keyId?: unknown; publicKey?: unknown };
  const publicKey = fromB64(parsed.publicKey, 32);
  if (parsed.alg !== 'ed25519' || !publicKey) throw new Error(`${source}: not an ed25519 public key file`);
  const keyId = keyIdOf(publicKey);
  if (parsed.keyId !== undefined && parsed.keyId !== keyId) throw new Error(`${source}: keyId ${String(parsed.keyId)} does not match its public key (${keyId})`);
  return { keyId, publicKey };
}

/**
 * The keys plugins may be signed by: the first-party key shipped in manifests/
 * (always trusted) and `$CARAPACE_HOME/trust/<keyId>.json`. A trust file whose
 * name or keyId does not match its key is ignored and reported in `problems`.
 */
export function loadTrustStore(trustDir: string | null, opts: { firstPartyFile?: string } = {}): { store: TrustStore; problems: string[] } {
  const store = new Map<string, TrustedKey>();
  const problems: string[] = [];
  const fpFile = opts.firstPartyFile ?? FIRST_PARTY_KEY_FILE;
  const fp = parsePublicKeyFile(readFileSync(fpFile, 'utf8'), fpFile);
  store.set(fp.keyId, { ...fp, firstParty: true, source: fpFile });
  if (trustDir && existsSync(trustDir)) {
    for (const name of readdirSync(trustDir).sort()) {
      if (!name.endsWith('.json')) continue;
      const file = join(trustDir, name);
      try {
        const k = parsePublicKeyFile(readFileSync(file, 'utf8'), file);
        if (name !== `${k.keyId}.json`) throw new Error(`${file}: file name must be ${k.keyId}.json`);
        if (!store.has(k.keyId)) store.set(k.keyId, { ...k, firstParty: false, source: file });
      } catch (err) {
        problems.push((err as Error).message);
      }
    }
  }
  return { store, problems };
}

// The ed25519 group order L, little-endian. tweetnacl does not check S < L, so
// S and S + L both verify (RFC 8032 §5.1.7 requires rejecting the latter).
const L = [0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];

function hasCanonicalS(sigB64: string): boolean {
  const sig = fromB64(sigB64, 64);
  if (!sig) return false;
  for (let i = 31; i >= 0; i--) {
    if (sig[32 + i] < L[i]) return true;
    if (sig[32 + i] > L[i]) return false;
  }
  return false; // S == L
}

/** Check the signature; returns the key that signed. Throws unsigned / unknown-key / bad-signature. */
export function checkSignature(m: Manifest, trust: TrustStore): TrustedKey {
  if (!m.signature) throw new PluginRefusedError('unsigned', `plugin ${m.id} is unsigned: its manifest has no signature`, { pluginId: m.id });
  const key = trust.get(m.signature.keyId);
  if (!key) {
    throw new PluginRefusedError('unknown-key', `plugin ${m.id} is signed by unknown key ${m.signature.keyId}; trust it with: carapace trust add KEYFILE`, {
      pluginId: m.id,
      details: { keyId: m.signature.keyId },
    });
  }
  if (m.publisher?.keyId !== undefined && m.publisher.keyId !== m.signature.keyId) {
    throw new PluginRefusedError('bad-signature', `plugin ${m.id}: publisher.keyId ${m.publisher.keyId} differs from the signing key ${m.signature.keyId}`, { pluginId: m.id });
  }
  if (!hasCanonicalS(m.signature.sig) || !verify(signingBytes(m), m.signature.sig, key.publicKey)) {
    throw new PluginRefusedError('bad-signature', `plugin ${m.id}: bad signature (the manifest was changed after signing, or signed by another key)`, { pluginId: m.id });
  }
  return key;
}

// ---------------------------------------------------------------- files

export function fileDigest(bytes: Uint8Array): string {
  return 'sha256-' + createHash('sha256').update(bytes).digest('base64');
}

/** Every regular file under dir, as relative `a/b.js` paths; symlinks and specials are reported separately. */
export function listFiles(dir: string): { files: string[]; unsafe: string[] } {
  const files: string[] = [];
  const unsafe: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(dir, r));
      if (st.isDirectory()) walk(r);
      else if (st.isFile()) files.push(r);
      else unsafe.push(r);
    }
  };
  walk('');
  return { files, unsafe };
}

/**
 * Read every listed file and check its digest; refuse any file present but not
 * listed (and any symlink). `ignore` names files that belong to the install, not
 * the plugin (the installed copy of plugin.json).
 */
export function readVerifiedFiles(m: Manifest, dir: string, ignore: readonly string[] = []): Map<string, Buffer> {
  const { files, unsafe } = listFiles(dir);
  if (unsafe.length) {
    throw new PluginRefusedError('file-not-listed', `plugin ${m.id}: ${unsafe[0]} is a symlink or special file; only listed regular files are loadable`, { pluginId: m.id, details: { file: unsafe[0] } });
  }
  const extra = files.filter((f) => !Object.hasOwn(m.files, f) && !ignore.includes(f));
  if (extra.length) {
    throw new PluginRefusedError('file-not-listed', `plugin ${m.id}: file ${extra[0]} is not listed in the manifest's files`, { pluginId: m.id, details: { file: extra[0], extra } });
  }
  const out = new Map<string, Buffer>();
  for (const [name, digest] of Object.entries(m.files)) {
    if (!files.includes(name)) {
      throw new PluginRefusedError('file-hash-mismatch', `plugin ${m.id}: listed file ${name} is missing`, { pluginId: m.id, details: { file: name } });
    }
    const bytes = readFileSync(join(dir, name));
    const actual = fileDigest(bytes);
    if (actual !== digest) {
      throw new PluginRefusedError('file-hash-mismatch', `plugin ${m.id}: file ${name} does not match its hash (expected ${digest}, got ${actual})`, { pluginId: m.id, details: { file: name } });
    }
    out.set(name, bytes);
  }
  return out;
}

// ---------------------------------------------------------------- versions

export function compareVersions(a: string, b: string): number {
  const parse = (v: string) => {
    const [core, pre] = v.split('+')[0].split(/-(.*)/s);
    return { nums: core.split('.').map(Number), pre: pre ?? null };
  };
  const x = parse(a);
  const y = parse(b);
  for (let i = 0; i < 3; i++) if (x.nums[i] !== y.nums[i]) return x.nums[i] < y.nums[i] ? -1 : 1;
  if (x.pre === y.pre) return 0;
  if (x.pre === null) return 1;
  if (y.pre === null) return -1;
  const xs = x.pre.split('.');
  const ys = y.pre.split('.');
  for (let i = 0; i < Math.max(xs.length, ys.length); i++) {
    if (xs[i] === undefined) return -1;
    if (ys[i] === undefined) return 1;
    const xn = /^\d+$/.test(xs[i]);
    const yn = /^\d+$/.test(ys[i]);
    if (xn && yn && Number(xs[i]) !== Number(ys[i])) return Number(xs[i]) < Number(ys[i]) ? -1 : 1;
    if (xn !== yn) return xn ? -1 : 1;
    if (xs[i] !== ys[i]) return xs[i] < ys[i] ? -1 : 1;
  }
  return 0;
}

// ---------------------------------------------------------------- the whole check

export interface VerifiedPlugin {
  manifest: Manifest;
  /** sha256 of the signed bytes: the identity of this exact manifest. */
  digest: string;
  key: TrustedKey;
  dir: string;
  files: Map<string, Buffer>;
  /** The permissions in force: requested ∩ granted (config denies apply at check time). */
  granted: string[];
  source: 'bundled' | 'installed';
}

export interface VerifyOptions {
  trust: TrustStore;
  source: 'bundled' | 'installed';
  /** What the user granted; undefined means "everything requested" (first-party bundled plugins). */
  granted?: readonly string[];
  /** The user explicitly allowed the worker runtime for this plugin. */
  allowWorker?: boolean;
  ignoreFiles?: readonly string[];
  /** An installed version this one would replace. */
  installedVersion?: string;
  allowDowngrade?: boolean;
}

/** `engines.carapace`: the Carapace versions the plugin was written for (a semver range, as npm's `engines`). */
function checkEngine(manifest: Manifest): void {
  const range = manifest.engines?.carapace;
  if (range === undefined) return;
  if (validRange(range) === null) {
    throw new PluginRefusedError('schema', `plugin ${manifest.id}: engines.carapace "${range}" is not a version range (e.g. ">=0.1.0")`, { pluginId: manifest.id, pointer: '/engines/carapace' });
  }
  if (!satisfies(VERSION, range, { includePrerelease: true })) {
    throw new PluginRefusedError('engine-mismatch', `plugin ${manifest.id} ${manifest.version} needs Carapace ${range}; this is ${VERSION}`, { pluginId: manifest.id, pointer: '/engines/carapace' });
  }
}

/** The full check, in the order a user would want the errors: shape, signature, runtime, files, grants. */
export function verifyPlugin(manifestText: string, dir: string, opts: VerifyOptions): VerifiedPlugin {
  const manifest = parseManifest(manifestText);
  const key = checkSignature(manifest, opts.trust);
  const runtime = manifest.runtime ?? 'isolate';
  const requested = permissionList(manifest.permissions, runtime);
  const granted = opts.granted ?? (key.firstParty ? requested : []);
  if (runtime === 'worker' && !key.firstParty && !opts.allowWorker && !granted.includes('worker')) {
    throw new PluginRefusedError('worker-not-allowed', `plugin ${manifest.id} asks for the worker runtime (full Node.js in the gateway's process) but is not first-party; install with --allow-worker to accept that`, { pluginId: manifest.id });
  }
  checkEngine(manifest);
  if (opts.installedVersion !== undefined && !opts.allowDowngrade && compareVersions(manifest.version, opts.installedVersion) < 0) {
    throw new PluginRefusedError('downgrade', `plugin ${manifest.id}: ${manifest.version} is older than the installed ${opts.installedVersion}; pass --allow-downgrade to accept`, { pluginId: manifest.id });
  }
  const files = readVerifiedFiles(manifest, dir, opts.ignoreFiles);
  const grantedSet = new Set(granted);
  if (opts.allowWorker) grantedSet.add('worker');
  if (key.firstParty && runtime === 'worker') grantedSet.add('worker');
  const missing = requested.filter((p) => !grantedSet.has(p));
  if (missing.length) {
    throw new PluginRefusedError('permission-not-granted', `plugin ${manifest.id} requests permissions the user has not granted: ${missing.join(', ')}; grant with: carapace plugins grant ${manifest.id} PERM`, {
      pluginId: manifest.id,
      details: { missing },
    });
  }
  return { manifest, digest: manifestDigest(manifest), key, dir, files, granted: requested, source: opts.source };
}
