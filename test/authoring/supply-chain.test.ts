import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { b64, generateKeyPair, keyIdOf, writeKeyFile, type KeyPair } from '../../core/identity/keys.ts';
import { homePaths, type HomePaths } from '../../core/home.ts';
import { fileDigest, type Manifest } from '../../core/plugins/manifest.ts';
import { signManifest } from '../../core/plugins/sign.ts';
import { readInstallRecord } from '../../core/plugins/installed.ts';
import { installFromRegistry } from '../../core/plugins/install-registry.ts';
import { registryPublicKey, signIndex, type PackageIndex } from '../../core/registry/signed-index.ts';
import { writeTgz, type TarEntryInput } from '../../core/registry/tar.ts';
import { createRegistryServer, type RegistryServer } from '../../core/registry/server.ts';
import { manifestVerifier } from '../../core/registry/verifier.ts';
import { runCli, type CliResult } from '../helpers/cli.ts';

// `carapace plugins install NAME --registry URL` against hostile registries:
// each attack is refused with its reason, audited, and the installed 1.0.0
// stays exactly as it was. The registry here is compromised (it signs whatever
// index it likes), so what stops the attack is the client's own checks: the
// pinned registry key, the index's timestamps, the publisher signature and the
// file digests. (Archive and index checks in isolation: test/registry/.)

const alice = generateKeyPair();
const mallory = generateKeyPair();
const ALICE = keyIdOf(alice.publicKey);
const MALLORY = keyIdOf(mallory.publicKey);

let base: string;
before(() => {
  base = mkdtempSync(join(tmpdir(), 'carapace-supply-'));
});
after(() => rmSync(base, { recursive: true, force: true }));

function codeOf(version: string): string {
  return `const tools = [{ name: 'echo_version', description: 'says its version', input: { type: 'object' }, async run() { return 'v${version}'; } }];\nexport { tools };\n`;
}

function manifestOf(id: string, version: string, files: Record<string, string>, opts: { kp?: KeyPair; permissions?: Manifest['permissions'] } = {}): Manifest {
  return signManifest(
    {
      schema: 'carapace.plugin/v1',
      id,
      name: id,
      version,
      kind: 'tool',
      publisher: { name: 'alice' },
      runtime: 'isolate',
      entry: 'index.js',
      files,
      permissions: opts.permissions ?? {},
      provides: { tools: [{ name: 'echo_version', description: 'says its version', input: { type: 'object' } }] },
    },
    opts.kp ?? alice,
  );
}

interface Release {
  tgz: Buffer;
  manifest: Manifest;
  code: string;
}

function release(id: string, version: string, opts: { kp?: KeyPair; permissions?: Manifest['permissions']; entries?: (r: { manifest: Buffer; code: Buffer }) => TarEntryInput[] } = {}): Release {
  const code = codeOf(version);
  const manifest = manifestOf(id, version, { 'index.js': fileDigest(Buffer.from(code)) }, opts);
  const parts = { manifest: Buffer.from(JSON.stringify(manifest, null, 2)), code: Buffer.from(code) };
  const entries = opts.entries ? opts.entries(parts) : [{ path: 'plugin.json', bytes: parts.manifest }, { path: 'index.js', bytes: parts.code }];
  return { tgz: writeTgz(entries), manifest, code };
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** A compromised registry: it holds a registry key and signs any index it is told to. */
interface Hostile {
  url: string;
  publish(name: string, version: string, tgz: Buffer, keyId?: string): void;
  index(name: string, at?: { timestamp?: number; expires?: number }): unknown;
  serveIndex: ((name: string) => unknown) | null;
  close(): Promise<void>;
}

async function hostileRegistry(): Promise<Hostile> {
  const key = generateKeyPair();
  const pkgs = new Map<string, Map<string, { tgz: Buffer; keyId: string }>>();
  const publisherKeys = new Map([ALICE, MALLORY].map((k, i) => [k, b64((i ? mallory : alice).publicKey)]));
  const h: Hostile = {
    url: '',
    publish(name, version, tgz, keyId = ALICE) {
      if (!pkgs.has(name)) pkgs.set(name, new Map());
      pkgs.get(name)!.set(version, { tgz, keyId });
    },
    index(name, at = {}) {
      const t = at.timestamp ?? Date.now();
      const versions: PackageIndex['versions'] = {};
      for (const [v, r] of pkgs.get(name) ?? []) versions[v] = { sha256: sha256(r.tgz), keyId: r.keyId };
      const latest = Object.keys(versions).sort().at(-1) ?? null;
      return signIndex({ name, versions, latest, timestamp: new Date(t).toISOString(), expires: new Date(at.expires ?? t + 3600_000).toISOString() }, key);
    },
    serveIndex: null,
    close: () => new Promise((r) => srv.close(() => r())),
  };
  const srv: Server = createServer((req, res) => {
    const json = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    const path = req.url ?? '';
    let m: RegExpExecArray | null;
    if (path === '/api/v1/carapace/registry-key') return json(200, registryPublicKey(key));
    if ((m = /^\/api\/v1\/carapace\/keys\/([0-9a-f]{16})$/.exec(path))) {
      const pub = publisherKeys.get(m[1]!);
      return pub ? json(200, { alg: 'ed25519', keyId: m[1], publicKey: pub }) : json(404, { message: 'no key' });
    }
    if ((m = /^\/api\/v1\/carapace\/plugins\/([a-z0-9-]+)\/index$/.exec(path))) return json(200, h.serveIndex ? h.serveIndex(m[1]!) : h.index(m[1]!));
    if ((m = /^\/api\/v1\/carapace\/plugins\/([a-z0-9-]+)\/([^/]+)\/tarball$/.exec(path))) {
      const r = pkgs.get(m[1]!)?.get(m[2]!);
      if (!r) return json(404, { message: 'no release' });
      return res.writeHead(200, { 'content-type': 'application/gzip' }).end(r.tgz);
    }
    json(404, { message: 'not found' });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  h.url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  return h;
}

interface Client {
  paths: HomePaths;
  install(...args: string[]): Promise<CliResult>;
}

let counter = 0;

/** A user who installed `name` 1.0.0 from `reg` (trusting alice), before the attack. */
async function clientWith(t: TestContext, reg: Hostile, name: string): Promise<Client> {
  reg.publish(name, '1.0.0', release(name, '1.0.0').tgz);
  const dir = join(base, `home-${++counter}`);
  const paths = homePaths(dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  await installFromRegistry(paths, { registry: reg.url, name, version: '1.0.0', trustKeyId: ALICE, yes: true });
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return { paths, install: (...args) => runCli(['plugins', 'install', ...args], { env: { CARAPACE_HOME: dir } }) };
}

const requireSqlite = () => createRequire(import.meta.url)('better-sqlite3') as typeof import('better-sqlite3');

/** The reasons of the refusals the CLI wrote to the audit log, oldest first. */
function auditedRefusals(paths: HomePaths): { reason: string }[] {
  const Database = requireSqlite();
  const db = new Database(paths.db, { readonly: true });
  try {
    return (db.prepare("SELECT data FROM audit WHERE action = 'plugin.install.refused' ORDER BY rowid").all() as { data: string }[]).map((r) => JSON.parse(r.data));
  } finally {
    db.close();
  }
}

/** Refused for `reason`, audited, and 1.0.0 still installed byte for byte. */
function assertRefused(c: Client, r: CliResult, reason: string, name: string): void {
  assert.equal(r.code, 1, `expected a refusal, got exit ${r.code}:\n${r.stdout}${r.stderr}`);
  assert.match(r.stderr, new RegExp(`refused \\(${reason}\\)`), r.stderr);
  const rec = readInstallRecord(c.paths.pluginsDir, name)!;
  assert.equal(rec.version, '1.0.0', 'the installed version is untouched');
  assert.equal(readFileSync(join(c.paths.pluginsDir, name, '1.0.0', 'index.js'), 'utf8'), codeOf('1.0.0'));
  assert.deepEqual(readdirSync(join(c.paths.pluginsDir, name)).sort(), ['1.0.0', 'install.json']);
  const staging = join(c.paths.pluginsDir, '.staging');
  assert.deepEqual(existsSync(staging) ? readdirSync(staging) : [], [], 'nothing is left unpacked');
  assert.equal(auditedRefusals(c.paths).at(-1)?.reason, reason, 'the refusal is in the audit log');
}

let reg: Hostile;
before(async () => {
  reg = await hostileRegistry();
});
after(() => reg?.close());

test('a tarball changed after the index was signed is refused for its sha256', async (t) => {
  const c = await clientWith(t, reg, 'tamper-tgz');
  const good = release('tamper-tgz', '1.1.0');
  reg.publish('tamper-tgz', '1.1.0', good.tgz);
  const index = reg.index('tamper-tgz');
  reg.publish('tamper-tgz', '1.1.0', release('tamper-tgz', '1.1.0', { entries: ({ manifest }) => [{ path: 'plugin.json', bytes: manifest }, { path: 'index.js', bytes: Buffer.from('evil()') }] }).tgz);
  reg.serveIndex = () => index;
  t.after(() => (reg.serveIndex = null));
  assertRefused(c, await c.install('tamper-tgz@1.1.0', '--registry', reg.url, '--yes'), 'sha256-mismatch', 'tamper-tgz');
});

test('a file added to a release after signing is refused as not listed', async (t) => {
  const c = await clientWith(t, reg, 'added-file');
  reg.publish('added-file', '1.1.0', release('added-file', '1.1.0', { entries: ({ manifest, code }) => [{ path: 'plugin.json', bytes: manifest }, { path: 'index.js', bytes: code }, { path: 'payload.js', bytes: Buffer.from('evil()') }] }).tgz);
  assertRefused(c, await c.install('added-file', '--registry', reg.url, '--yes'), 'file-not-listed', 'added-file');
});

test('a listed file removed from a release after signing is refused', async (t) => {
  const c = await clientWith(t, reg, 'removed-file');
  reg.publish('removed-file', '1.1.0', release('removed-file', '1.1.0', { entries: ({ manifest }) => [{ path: 'plugin.json', bytes: manifest }] }).tgz);
  assertRefused(c, await c.install('removed-file', '--registry', reg.url, '--yes'), 'file-hash-mismatch', 'removed-file');
});

test('a file renamed in a release after signing is refused', async (t) => {
  const c = await clientWith(t, reg, 'renamed-file');
  reg.publish('renamed-file', '1.1.0', release('renamed-file', '1.1.0', { entries: ({ manifest, code }) => [{ path: 'plugin.json', bytes: manifest }, { path: 'main.js', bytes: code }] }).tgz);
  assertRefused(c, await c.install('renamed-file', '--registry', reg.url, '--yes'), 'file-not-listed', 'renamed-file');
});

test('an update signed by another publisher key than the installed version is refused', async (t) => {
  const c = await clientWith(t, reg, 'other-key');
  reg.publish('other-key', '1.1.0', release('other-key', '1.1.0', { kp: mallory }).tgz, MALLORY);
  const r = await c.install('other-key', '--registry', reg.url, '--yes');
  assertRefused(c, r, 'publisher-key-changed', 'other-key');
  assert.match(r.stderr, new RegExp(`signed by ${MALLORY}, not ${ALICE}`));
});

test('a manifest that claims the publisher keyId but was signed by another key is refused as a bad signature', async (t) => {
  const c = await clientWith(t, reg, 'forged-sig');
  const code = codeOf('1.1.0');
  const real = manifestOf('forged-sig', '1.1.0', { 'index.js': fileDigest(Buffer.from(code)) }, { kp: mallory });
  const forged = { ...real, publisher: { name: 'alice', keyId: ALICE }, signature: { ...real.signature!, keyId: ALICE } };
  reg.publish('forged-sig', '1.1.0', writeTgz([{ path: 'plugin.json', bytes: Buffer.from(JSON.stringify(forged)) }, { path: 'index.js', bytes: Buffer.from(code) }]));
  assertRefused(c, await c.install('forged-sig', '--registry', reg.url, '--yes'), 'bad-signature', 'forged-sig');
});

test('an index older than the one already seen is refused as a rollback', async (t) => {
  const c = await clientWith(t, reg, 'old-index');
  const stale = reg.index('old-index', { timestamp: Date.now() - 600_000 });
  reg.publish('old-index', '1.1.0', release('old-index', '1.1.0').tgz);
  reg.serveIndex = () => stale;
  t.after(() => (reg.serveIndex = null));
  assertRefused(c, await c.install('old-index', '--registry', reg.url, '--yes'), 'rollback', 'old-index');
});

test('a replayed index past its expiry is refused', async (t) => {
  const c = await clientWith(t, reg, 'expired-index');
  reg.publish('expired-index', '1.1.0', release('expired-index', '1.1.0').tgz);
  const replay = reg.index('expired-index', { timestamp: Date.now() + 1000, expires: Date.now() - 1000 });
  reg.serveIndex = () => replay;
  t.after(() => (reg.serveIndex = null));
  assertRefused(c, await c.install('expired-index', '--registry', reg.url, '--yes'), 'expired', 'expired-index');
});

test('a release mixing the code of one version with the manifest of another is refused', async (t) => {
  const c = await clientWith(t, reg, 'mixed');
  reg.publish('mixed', '1.1.0', release('mixed', '1.1.0', { entries: ({ manifest }) => [{ path: 'plugin.json', bytes: manifest }, { path: 'index.js', bytes: Buffer.from(codeOf('1.0.0')) }] }).tgz);
  assertRefused(c, await c.install('mixed@1.1.0', '--registry', reg.url, '--yes'), 'file-hash-mismatch', 'mixed');
  const old = release('mixed', '1.0.0');
  reg.publish('mixed', '1.2.0', writeTgz([{ path: 'plugin.json', bytes: Buffer.from(JSON.stringify(old.manifest)) }, { path: 'index.js', bytes: Buffer.from(old.code) }]));
  assertRefused(c, await c.install('mixed@1.2.0', '--registry', reg.url, '--yes'), 'version-mismatch', 'mixed');
});

for (const [label, entry, reason] of [
  ['a ../ path', { path: '../../escape.js', bytes: Buffer.from('x') }, 'path-traversal'],
  ['an absolute path', { path: '/tmp/carapace-escape.js', bytes: Buffer.from('x') }, 'absolute-path'],
  ['a symlink', { path: 'link.js', type: '2', linkname: '/etc/passwd' }, 'symlink'],
] as const) {
  test(`a release carrying ${label} is refused before anything is written`, async (t) => {
    const name = `archive-${reason}`;
    const c = await clientWith(t, reg, name);
    reg.publish(name, '1.1.0', release(name, '1.1.0', { entries: ({ manifest, code }) => [{ path: 'plugin.json', bytes: manifest }, { path: 'index.js', bytes: code }, entry] }).tgz);
    assertRefused(c, await c.install(name, '--registry', reg.url, '--yes'), reason, name);
  });
}

test('a release that unpacks past 50 MiB (gzip bomb) is refused', async (t) => {
  const c = await clientWith(t, reg, 'bomb');
  reg.publish('bomb', '1.1.0', release('bomb', '1.1.0', { entries: ({ manifest, code }) => [{ path: 'plugin.json', bytes: manifest }, { path: 'index.js', bytes: code }, { path: 'zeros.bin', bytes: Buffer.alloc(60 * 1024 * 1024) }] }).tgz);
  assertRefused(c, await c.install('bomb', '--registry', reg.url, '--yes'), 'too-large', 'bomb');
});

test('an update whose permissions grew is refused without a new consent, naming the added ones', async (t) => {
  const c = await clientWith(t, reg, 'grows');
  reg.publish('grows', '1.1.0', release('grows', '1.1.0', { permissions: { net: ['api.example.com:443'] } }).tgz);
  const r = await c.install('grows', '--registry', reg.url);
  assertRefused(c, r, 'consent-required', 'grows');
  assert.match(r.stderr, /net:api\.example\.com:443/);
  const ok = await c.install('grows', '--registry', reg.url, '--yes');
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(readInstallRecord(c.paths.pluginsDir, 'grows')!.granted, ['net:api.example.com:443']);
});

test('an older version than the installed one is refused unless --allow-downgrade', async (t) => {
  const c = await clientWith(t, reg, 'downgrade');
  reg.publish('downgrade', '0.9.0', release('downgrade', '0.9.0').tgz);
  assertRefused(c, await c.install('downgrade@0.9.0', '--registry', reg.url, '--yes'), 'downgrade', 'downgrade');
  const ok = await c.install('downgrade@0.9.0', '--registry', reg.url, '--yes', '--allow-downgrade');
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(readInstallRecord(c.paths.pluginsDir, 'downgrade')!.version, '0.9.0');
});

test('an update asking for nothing new installs without a prompt, and --rollback returns to the previous version', async (t) => {
  const c = await clientWith(t, reg, 'updates');
  reg.publish('updates', '1.1.0', release('updates', '1.1.0').tgz);
  const up = await c.install('updates', '--registry', reg.url);
  assert.equal(up.code, 0, up.stderr);
  assert.equal(readInstallRecord(c.paths.pluginsDir, 'updates')!.version, '1.1.0');
  const back = await c.install('updates', '--rollback');
  assert.equal(back.code, 0, back.stderr);
  const rec = readInstallRecord(c.paths.pluginsDir, 'updates')!;
  assert.equal(rec.version, '1.0.0');
  assert.equal(rec.previous?.version, '1.1.0', 'rolling back keeps the newer version for a roll forward');
  assert.equal(readFileSync(join(c.paths.pluginsDir, 'updates', '1.0.0', 'index.js'), 'utf8'), codeOf('1.0.0'));
});

test('a first install from an untrusted publisher without --trust is refused, and --trust must name the signing key', async (t) => {
  reg.publish('first-time', '1.0.0', release('first-time', '1.0.0').tgz);
  const dir = join(base, 'home-first');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const install = (...args: string[]) => runCli(['plugins', 'install', 'first-time', '--registry', reg.url, '--yes', ...args], { env: { CARAPACE_HOME: dir } });
  const r = await install();
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`refused \\(unknown-key\\).*--trust ${ALICE}`));
  const wrong = await install('--trust', MALLORY);
  assert.match(wrong.stderr, /refused \(unknown-key\)/);
  assert.equal(readInstallRecord(join(dir, 'plugins'), 'first-time'), null);
  const ok = await install('--trust', ALICE);
  assert.equal(ok.code, 0, ok.stderr);
  assert.ok(existsSync(join(dir, 'trust', `${ALICE}.json`)), 'the key is trusted from now on');
});

test('installing by name takes the registry from CARAPACE_REGISTRY when --registry is not given, and says how to name one otherwise', async (t) => {
  reg.publish('from-env', '1.0.0', release('from-env', '1.0.0').tgz);
  const dir = join(base, 'home-env');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const none = await runCli(['plugins', 'install', 'from-env', '--yes'], { env: { CARAPACE_HOME: dir, CARAPACE_REGISTRY: '' } });
  assert.equal(none.code, 2);
  assert.match(none.stderr, /--registry URL, or CARAPACE_REGISTRY/);
  const ok = await runCli(['plugins', 'install', 'from-env', '--yes', '--trust', ALICE], { env: { CARAPACE_HOME: dir, CARAPACE_REGISTRY: reg.url } });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(readInstallRecord(join(dir, 'plugins'), 'from-env')?.version, '1.0.0');
});

test('re-publishing a version with carapace plugin publish is 409 and installs still get the original', async (t) => {
  const dir = join(base, 'republish');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const server: RegistryServer = await createRegistryServer({ dataDir: join(dir, 'data'), verifier: manifestVerifier });
  t.after(() => server.close());
  const url = await server.app.listen({ port: 0, host: '127.0.0.1' });
  const token = server.store.mintToken('alice');
  const keyFile = join(dir, 'alice.key.json');
  writeKeyFile(keyFile, alice);
  const env = { CARAPACE_HOME: join(dir, 'home') };
  const project = join(dir, 'proj');
  const cli = (...args: string[]) => runCli(args, { env, cwd: project });
  mkdirSync(project, { recursive: true });
  const publishVersion = async (code: string) => {
    mkdirSync(join(project, 'dist'), { recursive: true });
    writeFileSync(join(project, 'dist', 'index.js'), code);
    writeFileSync(join(project, 'dist', 'plugin.json'), JSON.stringify(manifestOf('republish', '1.0.0', { 'index.js': fileDigest(Buffer.from(code)) })));
    assert.equal((await cli('plugin', 'sign', '--key', keyFile)).code, 0);
    return cli('plugin', 'publish', '--registry', url, '--token', token, '--key', keyFile);
  };
  assert.equal((await publishVersion(codeOf('1.0.0'))).code, 0);
  const again = await publishVersion(codeOf('1.0.0').replace("'v1.0.0'", "'changed'"));
  assert.equal(again.code, 1);
  assert.match(again.stderr, /409.*already published/);
  const inst = await runCli(['plugins', 'install', 'republish', '--registry', url, '--trust', ALICE, '--yes'], { env });
  assert.equal(inst.code, 0, inst.stderr);
  assert.equal(readFileSync(join(dir, 'home', 'plugins', 'republish', '1.0.0', 'index.js'), 'utf8'), codeOf('1.0.0'));
});
