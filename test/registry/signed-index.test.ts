import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { b64, generateKeyPair, keyIdOf, readKeyFile, sign, type KeyPair } from '../../core/identity/keys.ts';
import { canonicalJson } from '../../core/plugins/canonical-json.ts';
import { createRegistryServer, type RegistryServer } from '../../core/registry/server.ts';
import { manifestVerifier } from '../../core/registry/verifier.ts';
import { signIndex, IndexRefused, type SignedPackageIndex } from '../../core/registry/signed-index.ts';
import { writeTgz, type TarEntryInput } from '../../core/registry/tar.ts';
import { chooseVersion, downloadRelease, fetchVerifiedIndex, registryClientState, ReleaseRefused, unpackRelease } from '../../core/registry/plugin-fetch.ts';

// Plugin releases: publish only when the registered publisher key signed the
// manifest; the index the registry signs; a client that pins the registry key
// and refuses forged, expired and rolled-back indexes.

let base: string;
let server: RegistryServer;
let url: string;
let token: string;
let publisher: KeyPair;

const CODE = 'export const tools = [];\n';

function digest(bytes: string | Uint8Array): string {
  return 'sha256-' + createHash('sha256').update(bytes).digest('base64');
}

function manifest(id: string, version: string, files: Record<string, string>, kp: KeyPair): Record<string, unknown> {
  const unsigned = {
    schema: 'carapace.plugin/v1',
    id,
    name: id,
    version,
    kind: 'tool',
    description: 'test tool',
    publisher: { name: 'alice', keyId: keyIdOf(kp.publicKey) },
    runtime: 'isolate',
    entry: 'index.js',
    files,
    engines: { carapace: '>=0.1.0' },
    permissions: { net: [], secrets: {}, fs: { read: [], write: [] }, env: [], bus: { publish: [], subscribe: [] }, exec: false },
    limits: { memoryMb: 64, callTimeoutMs: 5000 },
    config: { type: 'object', properties: {}, additionalProperties: false },
    provides: {},
  };
  return { ...unsigned, signature: { alg: 'ed25519', keyId: keyIdOf(kp.publicKey), sig: sign(canonicalJson(unsigned), kp) } };
}

function release(id: string, version: string, opts: { kp?: KeyPair; extra?: TarEntryInput[]; code?: string; listedCode?: string } = {}): Buffer {
  const kp = opts.kp ?? publisher;
  const m = manifest(id, version, { 'index.js': digest(opts.listedCode ?? opts.code ?? CODE) }, kp);
  return writeTgz([
    { path: 'plugin.json', bytes: Buffer.from(JSON.stringify(m, null, 2)) },
    { path: 'index.js', bytes: Buffer.from(opts.code ?? CODE) },
    ...(opts.extra ?? []),
  ]);
}

async function publish(tgz: Buffer, auth = token): Promise<Response> {
  return fetch(`${url}/api/v1/carapace/plugins`, { method: 'POST', headers: { authorization: `Bearer ${auth}`, 'content-type': 'application/gzip' }, body: new Uint8Array(tgz) });
}

async function registerKey(kp: KeyPair, auth = token): Promise<Response> {
  return fetch(`${url}/api/v1/carapace/keys`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${auth}`, 'content-type': 'application/json' },
    body: JSON.stringify({ alg: 'ed25519', publicKey: b64(kp.publicKey) }),
  });
}

/** A loopback "mirror" that relays the registry but can swap in a canned index. */
async function mirror(override: (path: string) => unknown | undefined): Promise<{ url: string; close(): Promise<void> }> {
  const srv: Server = createServer(async (req, res) => {
    const canned = override(req.url ?? '');
    if (canned !== undefined) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(canned));
      return;
    }
    const upstream = await fetch(`${url}${req.url}`);
    res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/octet-stream' });
    res.end(Buffer.from(await upstream.arrayBuffer()));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, close: () => new Promise((r) => srv.close(() => r())) };
}

async function freshIndex(name: string): Promise<SignedPackageIndex> {
  return (await (await fetch(`${url}/api/v1/carapace/plugins/${name}/index`)).json()) as SignedPackageIndex;
}

before(async () => {
  base = mkdtempSync(join(tmpdir(), 'carapace-registry-index-'));
  server = await createRegistryServer({ dataDir: join(base, 'data'), verifier: manifestVerifier });
  url = await server.app.listen({ port: 0, host: '127.0.0.1' });
  token = server.store.mintToken('alice');
  publisher = generateKeyPair();
  assert.equal((await registerKey(publisher)).status, 200);
  assert.equal((await publish(release('echo-tool', '1.0.0'))).status, 201);
});

after(async () => {
  await server?.close();
  rmSync(base, { recursive: true, force: true });
});

function clientHome(label: string) {
  return registryClientState(join(base, `client-${label}`));
}

test('a release signed by the registered publisher key is served with a verifying signed index', async () => {
  const state = clientHome('ok');
  const { index, pin } = await fetchVerifiedIndex(state, url, 'echo-tool');
  assert.equal(pin.firstUse, true);
  assert.equal(pin.key.keyId, keyIdOf(server.key.publicKey));
  assert.equal(index.latest, '1.0.0');
  assert.equal(index.versions['1.0.0']!.keyId, keyIdOf(publisher.publicKey));
  const tgz = await downloadRelease(url, index, chooseVersion(index));
  const dir = unpackRelease(tgz, join(base, 'unpack-ok'));
  assert.equal(readFileSync(join(dir, 'index.js'), 'utf8'), CODE);
});

test('the registry key is pinned on first use and a different key later is refused', async () => {
  const state = clientHome('pin');
  await fetchVerifiedIndex(state, url, 'echo-tool');
  const impostor = generateKeyPair();
  const forged = signIndex({ ...(({ signature, ...rest }) => rest)(await freshIndex('echo-tool')) }, impostor);
  const m = await mirror((p) => (p.endsWith('/index') ? forged : p.endsWith('/registry-key') ? { alg: 'ed25519', keyId: keyIdOf(impostor.publicKey), publicKey: b64(impostor.publicKey) } : undefined));
  try {
    // Same origin as the pin? No — the mirror is another origin; so pin the real key for it first.
    await fetchVerifiedIndex(state, url, 'echo-tool');
    const pins = JSON.parse(readFileSync(join(state.dir, 'pins.json'), 'utf8')) as Record<string, { keyId: string }>;
    pins[new URL(m.url).origin] = pins[new URL(url).origin]!;
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(state.dir, 'pins.json'), JSON.stringify(pins));
    await assert.rejects(fetchVerifiedIndex(state, m.url, 'echo-tool'), (err: IndexRefused) => err.reason === 'registry-key-changed' && /not the pinned registry key/.test(err.message));
  } finally {
    await m.close();
  }
});

test('a tampered index is refused for its bad signature', async () => {
  const state = clientHome('tamper');
  const evil = await freshIndex('echo-tool');
  evil.versions['1.0.0']!.sha256 = 'f'.repeat(64);
  const m = await mirror((p) => (p.endsWith('/index') ? evil : undefined));
  try {
    await assert.rejects(fetchVerifiedIndex(state, m.url, 'echo-tool'), (err: IndexRefused) => err.reason === 'bad-signature' && /does not verify/.test(err.message));
    assert.equal(existsSync(join(state.dir, 'seen.json')), false, 'a refused index is not remembered');
  } finally {
    await m.close();
  }
});

test('an expired index is refused even with a valid signature', async () => {
  const state = clientHome('expired');
  const registryKey = readKeyFile(join(base, 'data', 'registry-key.json'));
  const { signature, ...body } = await freshIndex('echo-tool');
  void signature;
  const stale = signIndex({ ...body, timestamp: new Date(Date.now() - 3 * 86_400_000).toISOString(), expires: new Date(Date.now() - 2 * 86_400_000).toISOString() }, registryKey);
  const m = await mirror((p) => (p.endsWith('/index') ? stale : undefined));
  try {
    await assert.rejects(fetchVerifiedIndex(state, m.url, 'echo-tool'), (err: IndexRefused) => err.reason === 'expired' && /expired at/.test(err.message));
  } finally {
    await m.close();
  }
});

test('an index older than the last one seen is refused as a rollback', async () => {
  const state = clientHome('rollback');
  assert.equal((await publish(release('roll-tool', '1.0.0'))).status, 201);
  const old = await freshIndex('roll-tool');
  await new Promise((r) => setTimeout(r, 5)); // the next index must carry a later timestamp
  assert.equal((await publish(release('roll-tool', '1.1.0'))).status, 201);
  const { index } = await fetchVerifiedIndex(state, url, 'roll-tool');
  assert.equal(index.latest, '1.1.0');
  const m = await mirror((p) => (p.endsWith('/index') ? old : undefined));
  try {
    const pins = JSON.parse(readFileSync(join(state.dir, 'pins.json'), 'utf8')) as Record<string, unknown>;
    const seen = JSON.parse(readFileSync(join(state.dir, 'seen.json'), 'utf8')) as Record<string, unknown>;
    pins[new URL(m.url).origin] = pins[new URL(url).origin];
    seen[new URL(m.url).origin] = seen[new URL(url).origin];
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(state.dir, 'pins.json'), JSON.stringify(pins));
    writeFileSync(join(state.dir, 'seen.json'), JSON.stringify(seen));
    await assert.rejects(fetchVerifiedIndex(state, m.url, 'roll-tool'), (err: IndexRefused) => err.reason === 'rollback' && /older .* than one already seen/.test(err.message));
  } finally {
    await m.close();
  }
});

test('a download whose sha256 differs from the signed index is refused', async () => {
  const state = clientHome('sha');
  const { index } = await fetchVerifiedIndex(state, url, 'echo-tool');
  const swapped = { ...index, versions: { '1.0.0': { ...index.versions['1.0.0']!, sha256: 'a'.repeat(64) } } };
  await assert.rejects(downloadRelease(url, swapped, '1.0.0'), (err: ReleaseRefused) => err.reason === 'sha256-mismatch');
});

test('re-publishing a plugin version is 409 and the original release is kept', async () => {
  const before = await freshIndex('echo-tool');
  const res = await publish(release('echo-tool', '1.0.0', { code: 'export const tools = ["changed"];\n' }));
  assert.equal(res.status, 409);
  assert.match(((await res.json()) as { message: string }).message, /already published; versions are immutable/);
  assert.equal((await freshIndex('echo-tool')).versions['1.0.0']!.sha256, before.versions['1.0.0']!.sha256);
});

test('a release signed by a key not registered to the publisher is refused', async () => {
  const stranger = generateKeyPair();
  const res = await publish(release('stranger-tool', '1.0.0', { kp: stranger }));
  assert.equal(res.status, 403);
  assert.match(((await res.json()) as { message: string }).message, /not registered to @alice/);
  const bob = server.store.mintToken('bob');
  assert.equal((await registerKey(stranger, bob)).status, 200);
  const stolen = await publish(release('stranger-tool', '1.0.0', { kp: stranger }), token);
  assert.equal(stolen.status, 403, 'alice cannot publish with a key registered to bob');
});

test('a release whose manifest signature does not verify is refused', async () => {
  const m = manifest('forged-tool', '1.0.0', { 'index.js': digest(CODE) }, publisher);
  (m as { description: string }).description = 'edited after signing';
  const res = await publish(writeTgz([{ path: 'plugin.json', bytes: Buffer.from(JSON.stringify(m)) }, { path: 'index.js', bytes: Buffer.from(CODE) }]));
  assert.equal(res.status, 403);
  assert.equal(((await res.json()) as { details: { reason: string } }).details.reason, 'bad-signature');
});

test('a release whose manifest fails the carapace.plugin/v1 schema is refused with the JSON pointer', async () => {
  const m = manifest('schema-tool', '1.0.0', { 'index.js': digest(CODE) }, publisher);
  const { signature: _s, ...unsigned } = m;
  const bad = { ...unsigned, kind: 'rootkit' };
  const signed = { ...bad, signature: { alg: 'ed25519', keyId: keyIdOf(publisher.publicKey), sig: sign(canonicalJson(bad), publisher) } };
  const res = await publish(writeTgz([{ path: 'plugin.json', bytes: Buffer.from(JSON.stringify(signed)) }, { path: 'index.js', bytes: Buffer.from(CODE) }]));
  assert.equal(res.status, 400);
  const body = (await res.json()) as { message: string; details: { reason: string } };
  assert.equal(body.details.reason, 'schema');
  assert.match(body.message, /"\/kind"/);
});

test('the registry serves a registered publisher key by its keyId', async () => {
  const res = await fetch(`${url}/api/v1/carapace/keys/${keyIdOf(publisher.publicKey)}`);
  assert.equal(res.status, 200);
  const body = (await res.json()) as { keyId: string; publicKey: string; user: string };
  assert.deepEqual(body, { alg: 'ed25519', keyId: keyIdOf(publisher.publicKey), publicKey: b64(publisher.publicKey), user: 'alice' });
  assert.equal((await fetch(`${url}/api/v1/carapace/keys/0000000000000000`)).status, 404);
});

test('a release whose files do not match the manifest digests, or carry unlisted files, is refused', async () => {
  const mismatch = await publish(release('digest-tool', '1.0.0', { code: 'evil()\n', listedCode: CODE }));
  assert.equal(mismatch.status, 400);
  assert.equal(((await mismatch.json()) as { details: { reason: string } }).details.reason, 'file-hash-mismatch');
  const unlisted = await publish(release('digest-tool', '1.0.0', { extra: [{ path: 'payload.js', bytes: Buffer.from('x') }] }));
  assert.equal(unlisted.status, 400);
  assert.equal(((await unlisted.json()) as { details: { reason: string } }).details.reason, 'file-not-listed');
});

test('a yanked plugin version is marked in the signed index and is not chosen as latest', async () => {
  assert.equal((await publish(release('yank-tool', '1.0.0'))).status, 201);
  assert.equal((await publish(release('yank-tool', '1.0.1'))).status, 201);
  const y = await fetch(`${url}/api/v1/carapace/plugins/yank-tool/1.0.1/yank`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ reason: 'leaks the token in logs' }),
  });
  assert.equal(y.status, 200);
  const { index } = await fetchVerifiedIndex(clientHome('yank'), url, 'yank-tool');
  assert.equal(index.versions['1.0.1']!.yanked, 'leaks the token in logs');
  assert.equal(index.latest, '1.0.0');
  assert.equal(chooseVersion(index), '1.0.0');
});

test('a scoped id belongs to its publisher: @alice/... is hers, and bob cannot publish under it', async () => {
  const bobToken = server.store.mintToken('bob');
  const bob = generateKeyPair();
  assert.equal((await registerKey(bob, bobToken)).status, 200);
  const squat = await publish(release('@alice/squatted', '1.0.0', { kp: bob }), bobToken);
  assert.equal(squat.status, 403);
  const body = (await squat.json()) as { message: string; details: { reason: string } };
  assert.equal(body.details.reason, 'scope-not-owned');
  assert.match(body.message, /@alice scope/);
  assert.equal((await fetch(`${url}/api/v1/carapace/plugins/@alice/squatted`)).status, 404, 'nothing was published');
  assert.equal((await publish(release('@bob/own-tool', '1.0.0', { kp: bob }), bobToken)).status, 201);
  assert.equal((await publish(release('@alice/own-tool', '1.0.0'))).status, 201);
});
