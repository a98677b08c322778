import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateRawSync } from 'node:zlib';
import { ArchiveError } from '../../core/registry/archive-path.ts';
import { readTgz, writeTgz } from '../../core/registry/tar.ts';
import { readZip, writeZip } from '../../core/registry/zip.ts';
import { unpackRelease, ReleaseRefused } from '../../core/registry/plugin-fetch.ts';
import { createRegistryServer } from '../../core/registry/server.ts';
import { manifestVerifier } from '../../core/registry/verifier.ts';
import { runCli } from '../helpers/cli.ts';

// Hostile archives: each is refused with its reason, and nothing lands on disk.

const SIXTY_MIB = 60 * 1024 * 1024;

interface RawZipEntry {
  name: string;
  data: Buffer;
  mode?: number;
  declaredSize?: number;
}

/** A zip written byte by byte, so it can say what our writer never would. */
function rawZip(entries: RawZipEntry[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name);
    const body = deflateRawSync(e.data);
    const size = e.declaredSize ?? e.data.length;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(8, 8);
    local.writeUInt32LE(crc32(e.data) >>> 0, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(8, 10);
    central.writeUInt32LE(crc32(e.data) >>> 0, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(((e.mode ?? 0o100644) << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, body);
    centrals.push(central, name);
    offset += 30 + name.length + body.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

const SKILL = Buffer.from('---\nname: x\ndescription: y\n---\n');

function refusedWith(reason: string) {
  return (err: unknown) => (err instanceof ArchiveError || err instanceof ReleaseRefused) && err.reason === reason;
}

test('zip and tgz round-trip through our own writers', () => {
  const files = [{ path: 'SKILL.md', bytes: SKILL }, { path: 'a/b.txt', bytes: Buffer.from('hello') }];
  assert.deepEqual(readZip(writeZip(files)).map((f) => [f.path, Buffer.from(f.bytes).toString()]), files.map((f) => [f.path, f.bytes.toString()]));
  assert.deepEqual(readTgz(writeTgz(files)).map((f) => [f.path, Buffer.from(f.bytes).toString()]), files.map((f) => [f.path, f.bytes.toString()]));
});

test('a zip entry with ../ is refused as path traversal', () => {
  assert.throws(() => readZip(rawZip([{ name: 'SKILL.md', data: SKILL }, { name: '../../.bashrc', data: Buffer.from('evil') }])), refusedWith('path-traversal'));
});

test('a zip entry with an absolute path is refused', () => {
  assert.throws(() => readZip(rawZip([{ name: '/etc/cron.d/evil', data: Buffer.from('x') }])), refusedWith('absolute-path'));
});

test('a zip symlink entry is refused', () => {
  assert.throws(() => readZip(rawZip([{ name: 'link', data: Buffer.from('/etc/passwd'), mode: 0o120777 }])), refusedWith('symlink'));
});

test('a zip bomb that declares more than 50 MiB is refused before inflating', () => {
  assert.throws(() => readZip(rawZip([{ name: 'bomb.bin', data: Buffer.alloc(SIXTY_MIB) }])), refusedWith('too-large'));
});

test('a zip entry that lies about its size cannot inflate past the declared size', () => {
  assert.throws(() => readZip(rawZip([{ name: 'liar.bin', data: Buffer.alloc(SIXTY_MIB), declaredSize: 10 }])), refusedWith('too-large'));
});

test('a tgz entry with ../ is refused as path traversal', () => {
  assert.throws(() => readTgz(writeTgz([{ path: '../outside.js', bytes: Buffer.from('x') }])), refusedWith('path-traversal'));
});

test('a tgz entry with an absolute path is refused', () => {
  assert.throws(() => readTgz(writeTgz([{ path: '/tmp/evil.js', bytes: Buffer.from('x') }])), refusedWith('absolute-path'));
});

test('a tgz symlink, hard link or device entry is refused', () => {
  assert.throws(() => readTgz(writeTgz([{ path: 'index.js', type: '2', linkname: '/etc/passwd' }])), refusedWith('symlink'));
  assert.throws(() => readTgz(writeTgz([{ path: 'index.js', type: '1', linkname: 'plugin.json' }])), refusedWith('hardlink'));
  assert.throws(() => readTgz(writeTgz([{ path: 'dev', type: '3' }])), refusedWith('device'));
});

test('a tgz that unpacks past 50 MiB (gzip bomb) is refused', () => {
  const bomb = writeTgz([{ path: 'zeros.bin', bytes: Buffer.alloc(SIXTY_MIB) }]);
  assert.ok(bomb.length < 1024 * 1024, 'the bomb is small on the wire');
  assert.throws(() => readTgz(bomb), refusedWith('too-large'));
});

test('a refused release leaves nothing unpacked on disk', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'carapace-unpack-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const evil = writeTgz([{ path: 'index.js', bytes: Buffer.from('ok') }, { path: '../../escape.js', bytes: Buffer.from('x') }]);
  assert.throws(() => unpackRelease(evil, join(dir, 'staging')), refusedWith('path-traversal'));
  assert.equal(existsSync(join(dir, 'staging')), false);
  assert.equal(existsSync(join(dir, 'escape.js')), false);
});

test('the registry refuses a plugin release carrying a symlink, naming the reason', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'carapace-registry-attack-'));
  const server = await createRegistryServer({ dataDir: join(dir, 'data'), verifier: manifestVerifier });
  t.after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const url = await server.app.listen({ port: 0, host: '127.0.0.1' });
  const token = server.store.mintToken('alice');
  const res = await fetch(`${url}/api/v1/carapace/plugins`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/gzip' },
    body: new Uint8Array(writeTgz([{ path: "plugin.json", bytes: Buffer.from("{}") }, { path: "index.js", type: "2", linkname: "/etc/shadow" }])),
  });
  assert.equal(res.status, 400);
  const body = (await res.json()) as { code: string; message: string; details: { reason: string } };
  assert.equal(body.details.reason, 'symlink');
  assert.match(body.message, /archive refused: symlink refused/);
});

test('carapace skills install refuses a traversal zip from a registry and leaves the workspace untouched', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'carapace-skill-attack-'));
  // A loopback stand-in for a compromised ClawHub, speaking its wire format.
  const evilZip = rawZip([{ name: 'SKILL.md', data: SKILL }, { name: '../../../evil.sh', data: Buffer.from('rm -rf ~') }]);
  const srv = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    res.setHeader('content-type', 'application/json');
    if (u.pathname === '/api/v1/skills/evil') res.end(JSON.stringify({ skill: { slug: 'evil', displayName: 'Evil', tags: {}, stats: {}, createdAt: 0, updatedAt: 0 }, latestVersion: { version: '1.0.0', createdAt: 0, changelog: '' }, owner: { handle: 'm' } }));
    else if (u.pathname === '/api/v1/skills/evil/versions/1.0.0') res.end(JSON.stringify({ version: { version: '1.0.0', createdAt: 0, changelog: '' }, skill: { slug: 'evil', displayName: 'Evil' } }));
    else if (u.pathname === '/api/v1/download') {
      res.setHeader('content-type', 'application/zip');
      res.end(evilZip);
    } else {
      res.statusCode = 404;
      res.end('{}');
    }
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(async () => {
    await new Promise<void>((r) => srv.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });
  const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  const home = join(dir, 'home');
  const res = await runCli(['skills', 'install', 'evil', '--registry', url], { home });
  assert.equal(res.code, 1);
  assert.match(res.stderr, /archive refused: path traversal refused/);
  assert.deepEqual(existsSync(join(home, 'workspace', 'skills')) ? readdirSync(join(home, 'workspace', 'skills')) : [], []);
  assert.equal(existsSync(join(dir, 'evil.sh')), false);
});
