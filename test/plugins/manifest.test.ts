import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, symlinkSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import nacl from 'tweetnacl';
import { canonicalJson } from '../../core/plugins/canonical-json.ts';
import { verifyPlugin, loadTrustStore, PluginRefusedError, compareVersions, type RefusalReason, type VerifyOptions } from '../../core/plugins/manifest.ts';
import { signManifest, publicKeyFile } from '../../core/plugins/sign.ts';
import { generateKeyPair, b64 } from '../../core/identity/keys.ts';
import { makePlugin, throwawayPublisher } from '../helpers/plugins.ts';

const CODE = { 'index.js': 'exports.tools = [];\n' };

function refusal(fn: () => unknown, reason: RefusalReason, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof PluginRefusedError, `expected PluginRefusedError, got ${String(err)}`);
    assert.equal(err.reason, reason, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

function setup(t: { after(fn: () => void): void }) {
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const trust = loadTrustStore(pub.trustDir).store;
  const opts = (extra: Partial<VerifyOptions> = {}): VerifyOptions => ({ trust, source: 'installed', granted: [], ignoreFiles: ['plugin.json'], ...extra });
  return { pub, trust, opts };
}

test('canonical JSON sorts keys by code unit, drops whitespace and prints numbers the ES way', () => {
  assert.equal(canonicalJson({ b: [1, 'x', null, true], a: { d: 1e21, c: 0.000001, e: -0 }, '€': 1, Z: 2 }), '{"Z":2,"a":{"c":0.000001,"d":1e+21,"e":0},"b":[1,"x",null,true],"€":1}');
  assert.equal(canonicalJson({ '\u{1F600}': 1, '\uFFFF': 2 }), '{"\u{1F600}":1,"\uFFFF":2}');
  assert.throws(() => canonicalJson({ a: NaN }));
});

test('a manifest signed by a trusted key with matching files verifies and yields the hashed bytes', (t) => {
  const { pub, opts } = setup(t);
  const p = makePlugin(CODE, { id: 'ok' }, pub.kp);
  t.after(p.cleanup);
  const v = verifyPlugin(p.manifestText, p.dir, opts());
  assert.equal(v.manifest.id, 'ok');
  assert.equal(v.files.get('index.js')?.toString(), CODE['index.js']);
  assert.match(v.digest, /^[0-9a-f]{64}$/);
});

test('scoped registry ids @publisher/name are accepted; bad ids are schema errors with a pointer', (t) => {
  const { pub, opts } = setup(t);
  const p = makePlugin(CODE, { id: '@acme/weather' }, pub.kp);
  t.after(p.cleanup);
  assert.equal(verifyPlugin(p.manifestText, p.dir, opts()).manifest.id, '@acme/weather');
  const bad = makePlugin(CODE, { id: 'Bad_ID' }, pub.kp);
  t.after(bad.cleanup);
  refusal(() => verifyPlugin(bad.manifestText, bad.dir, opts()), 'schema', /"\/id"/);
});

test('an unknown manifest member is a schema error naming its JSON pointer', (t) => {
  const { pub, opts } = setup(t);
  const p = makePlugin(CODE, { id: 'extra', permissions: { net: ['a.com:443'], sudo: true } as never }, pub.kp);
  t.after(p.cleanup);
  refusal(() => verifyPlugin(p.manifestText, p.dir, opts({ granted: ['net:a.com:443'] })), 'schema', /"\/permissions\/sudo"/);
});

test('a missing member is a schema error at its own pointer', (t) => {
  const { pub, opts } = setup(t);
  const p = makePlugin(CODE, { id: 'noversion' }, pub.kp);
  t.after(p.cleanup);
  const { version: _v, ...rest } = JSON.parse(p.manifestText);
  refusal(() => verifyPlugin(JSON.stringify(signManifest(rest, pub.kp)), p.dir, opts()), 'schema', /schema error at "\/version": must have required property 'version'/);
});

test('files named after Object.prototype members are not taken for listed ones', (t) => {
  const { pub, opts } = setup(t);
  const p = makePlugin(CODE, { id: 'protoname' }, pub.kp);
  t.after(p.cleanup);
  writeFileSync(join(p.dir, 'constructor'), 'x');
  refusal(() => verifyPlugin(p.manifestText, p.dir, opts()), 'file-not-listed', /file constructor is not listed/);
  const q = makePlugin(CODE, { id: 'protoentry', entry: 'toString' }, pub.kp);
  t.after(q.cleanup);
  refusal(() => verifyPlugin(q.manifestText, q.dir, opts()), 'schema', /"\/entry"/);
});

test('an entry not listed in files is a schema error at /entry', (t) => {
  const { pub, opts } = setup(t);
  const p = makePlugin(CODE, { id: 'noentry', entry: 'main.js' }, pub.kp);
  t.after(p.cleanup);
  refusal(() => verifyPlugin(p.manifestText, p.dir, opts()), 'schema', /"\/entry"/);
});

test('an unsigned manifest is refused as unsigned', (t) => {
  const { opts } = setup(t);
  const p = makePlugin(CODE, { id: 'unsigned' }, null);
  t.after(p.cleanup);
  refusal(() => verifyPlugin(p.manifestText, p.dir, opts()), 'unsigned');
});

test('a manifest signed by a key not in the trust store is refused as unknown key', (t) => {
  const { opts } = setup(t);
  const p = makePlugin(CODE, { id: 'stranger' }, generateKeyPair());
  t.after(p.cleanup);
  refusal(() => verifyPlugin(p.manifestText, p.dir, opts()), 'unknown-key', /carapace trust add/);
});

test('a manifest changed after signing is refused as bad signature', (t) => {
  const { pub, opts } = setup(t);
  const p = makePlugin(CODE, { id: 'tampered' }, pub.kp);
  t.after(p.cleanup);
  const m = JSON.parse(p.manifestText);
  m.permissions = { net: ['evil.example:443'] };
  refusal(() => verifyPlugin(JSON.stringify(m), p.dir, opts({ granted: ['net:evil.example:443'] })), 'bad-signature');
});

test('a non-canonical signature encoding is refused, not normalised', (t) => {
  const { pub, opts } = setup(t);
  const p = makePlugin(CODE, { id: 'malleable' }, pub.kp);
  t.after(p.cleanup);
  const m = JSON.parse(p.manifestText);
  const sig = Buffer.from(m.signature.sig, 'base64');
  // S + L (the group order) is the classic non-canonical twin tweetnacl-like verifiers may accept.
  const L = [0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];
  let carry = 0;
  for (let i = 0; i < 32; i++) {
    const v = sig[32 + i] + L[i] + carry;
    sig[32 + i] = v & 0xff;
    carry = v >> 8;
  }
  m.signature.sig = b64(sig);
  refusal(() => verifyPlugin(JSON.stringify(m), p.dir, opts()), 'bad-signature');
  m.signature.sig = p.manifest.signature!.sig.replace(/=$/, '') + '=='; // not canonical base64
  refusal(() => verifyPlugin(JSON.stringify(m), p.dir, opts()), 'bad-signature');
});

test('a code file that does not match its digest is refused as file hash mismatch', (t) => {
  const { pub, opts } = setup(t);
  const p = makePlugin(CODE, { id: 'swapped' }, pub.kp);
  t.after(p.cleanup);
  writeFileSync(join(p.dir, 'index.js'), 'globalThis.evil = 1;\n');
  refusal(() => verifyPlugin(p.manifestText, p.dir, opts()), 'file-hash-mismatch', /index\.js/);
});

test('a file present but not listed is refused as file not listed', (t) => {
  const { pub, opts } = setup(t);
  const p = makePlugin(CODE, { id: 'extrafile' }, pub.kp);
  t.after(p.cleanup);
  writeFileSync(join(p.dir, 'payload.js'), 'x');
  refusal(() => verifyPlugin(p.manifestText, p.dir, opts()), 'file-not-listed', /payload\.js/);
});

test('a symlink in the plugin folder is refused even when its name is listed', (t) => {
  const { pub, opts } = setup(t);
  const outside = mkdtempSync(join(tmpdir(), 'carapace-outside-'));
  t.after(() => rmSync(outside, { recursive: true, force: true }));
  writeFileSync(join(outside, 'lib.js'), 'x');
  const p = makePlugin({ ...CODE, 'lib.js': 'x' }, { id: 'linked' }, pub.kp);
  t.after(p.cleanup);
  rmSync(join(p.dir, 'lib.js'));
  symlinkSync(join(outside, 'lib.js'), join(p.dir, 'lib.js'));
  refusal(() => verifyPlugin(p.manifestText, p.dir, opts()), 'file-not-listed', /symlink/);
});

test('installing an older version over a newer one is refused without allowDowngrade', (t) => {
  const { pub, opts } = setup(t);
  const p = makePlugin(CODE, { id: 'old', version: '1.2.0' }, pub.kp);
  t.after(p.cleanup);
  refusal(() => verifyPlugin(p.manifestText, p.dir, opts({ installedVersion: '1.10.0' })), 'downgrade', /--allow-downgrade/);
  assert.equal(verifyPlugin(p.manifestText, p.dir, opts({ installedVersion: '1.10.0', allowDowngrade: true })).manifest.version, '1.2.0');
  assert.equal(compareVersions('1.0.0-rc.1', '1.0.0'), -1);
  assert.equal(compareVersions('2.0.0', '1.99.99'), 1);
});

test('a permission the user has not granted is refused, naming every missing permission', (t) => {
  const { pub, opts } = setup(t);
  const p = makePlugin(CODE, { id: 'greedy', permissions: { net: ['api.example.com:443'], secrets: { TOKEN: ['api.example.com'] } } }, pub.kp);
  t.after(p.cleanup);
  refusal(() => verifyPlugin(p.manifestText, p.dir, opts({ granted: ['net:api.example.com:443'] })), 'permission-not-granted', /secret:TOKEN@api\.example\.com/);
});

test('the worker runtime is refused for a third-party key without an explicit allow', (t) => {
  const { pub, opts } = setup(t);
  const p = makePlugin(CODE, { id: 'wants-node', runtime: 'worker' }, pub.kp);
  t.after(p.cleanup);
  refusal(() => verifyPlugin(p.manifestText, p.dir, opts()), 'worker-not-allowed');
  assert.equal(verifyPlugin(p.manifestText, p.dir, opts({ allowWorker: true })).manifest.runtime, 'worker');
});

test('a trust file whose name or keyId does not match its key is ignored and reported', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'carapace-trust-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const kp = generateKeyPair();
  writeFileSync(join(dir, '0000000000000000.json'), JSON.stringify(publicKeyFile(kp)));
  const { store, problems } = loadTrustStore(dir);
  assert.equal(store.size, 1, 'only the first-party key');
  assert.equal(problems.length, 1);
});

test('the first-party key is always trusted', () => {
  const fp = JSON.parse(readFileSync(new URL('../../manifests/first-party.pub.json', import.meta.url), 'utf8'));
  const { store } = loadTrustStore(null);
  assert.equal(store.get(fp.keyId)?.firstParty, true);
});

test('signatures verify over canonical bytes, so key order and whitespace in the file do not matter', (t) => {
  const { pub, opts } = setup(t);
  const p = makePlugin(CODE, { id: 'reordered' }, pub.kp);
  t.after(p.cleanup);
  const m = JSON.parse(p.manifestText) as Record<string, unknown>;
  const reversed = Object.fromEntries(Object.entries(m).reverse());
  assert.equal(verifyPlugin(JSON.stringify(reversed, null, 7), p.dir, opts()).manifest.id, 'reordered');
  void nacl;
  void signManifest;
});

test('engines.carapace is a semver range this Carapace must satisfy: a plugin written for a later one is refused naming both', (t) => {
  const { pub, opts } = setup(t);
  const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  const verifyWith = (carapace: string) => {
    const p = makePlugin(CODE, { id: 'engined', engines: { carapace } }, pub.kp);
    t.after(p.cleanup);
    return () => verifyPlugin(p.manifestText, p.dir, opts());
  };
  assert.equal(verifyWith(`>=${VERSION}`)().manifest.id, 'engined');
  assert.equal(verifyWith('^0.1.0 || >=1')().manifest.id, 'engined');
  refusal(verifyWith('>=99.0.0'), 'engine-mismatch', new RegExp(`needs Carapace >=99\\.0\\.0; this is ${VERSION.replace(/\./g, '\\.')}`));
  refusal(verifyWith('banana'), 'schema', /engines\.carapace "banana" is not a version range/);
});
