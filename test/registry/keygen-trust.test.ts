import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { keyIdOf, readKeyFile } from '../../core/identity/keys.ts';
import { runCli } from '../helpers/cli.ts';
import { tempHome } from '../helpers/home.ts';

test('keygen writes an identity-shaped ed25519 key file readable only by its owner', async (t) => {
  const home = tempHome('keygen');
  t.after(home.cleanup);
  const out = join(home.dir, '..', 'publisher.json');
  const res = await runCli(['keygen', '--out', out, '--json'], { home: home.dir });
  assert.equal(res.code, 0, res.stderr);
  const info = JSON.parse(res.stdout) as { keyId: string; publicKey: string };
  const file = JSON.parse(readFileSync(out, 'utf8')) as Record<string, string>;
  assert.deepEqual(Object.keys(file).sort(), ['alg', 'id', 'publicKey', 'seed']);
  const kp = readKeyFile(out);
  assert.equal(info.keyId, keyIdOf(kp.publicKey));
  assert.equal(statSync(out).mode & 0o777, 0o600);
});

test('keygen refuses to overwrite an existing key file', async (t) => {
  const home = tempHome('keygen2');
  t.after(home.cleanup);
  const out = join(home.dir, '..', 'publisher.json');
  assert.equal((await runCli(['keygen', '--out', out], { home: home.dir })).code, 0);
  const before = readFileSync(out, 'utf8');
  const again = await runCli(['keygen', '--out', out], { home: home.dir });
  assert.equal(again.code, 1);
  assert.match(again.stderr, /already exists/);
  assert.equal(readFileSync(out, 'utf8'), before);
});

test('trust add stores only the public part under trust/<keyId>.json, list shows it, remove deletes it', async (t) => {
  const home = tempHome('trust');
  t.after(home.cleanup);
  const keyFile = join(home.dir, '..', 'publisher.json');
  await runCli(['keygen', '--out', keyFile], { home: home.dir });
  const kp = readKeyFile(keyFile);
  const keyId = keyIdOf(kp.publicKey);
  const add = await runCli(['trust', 'add', keyFile], { home: home.dir });
  assert.equal(add.code, 0, add.stderr);
  const stored = JSON.parse(readFileSync(join(home.paths.trustDir, `${keyId}.json`), 'utf8')) as Record<string, string>;
  assert.deepEqual(stored, { alg: 'ed25519', keyId, publicKey: kp.publicKeyB64 });
  assert.equal(readFileSync(join(home.paths.trustDir, `${keyId}.json`), 'utf8').includes(JSON.parse(readFileSync(keyFile, 'utf8')).seed), false);
  const list = await runCli(['trust', 'list', '--json'], { home: home.dir });
  assert.deepEqual((JSON.parse(list.stdout) as { keys: { keyId: string }[] }).keys.map((k) => k.keyId), [keyId]);
  const rm = await runCli(['trust', 'remove', keyId], { home: home.dir });
  assert.equal(rm.code, 0, rm.stderr);
  assert.equal(existsSync(join(home.paths.trustDir, `${keyId}.json`)), false);
});

test('trust add refuses a file whose keyId does not match its public key', async (t) => {
  const home = tempHome('trust2');
  t.after(home.cleanup);
  const keyFile = join(home.dir, '..', 'publisher.json');
  await runCli(['keygen', '--out', keyFile], { home: home.dir });
  const pub = JSON.parse(readFileSync(keyFile, 'utf8')) as Record<string, string>;
  const lying = join(home.dir, '..', 'lying.pub.json');
  writeFileSync(lying, JSON.stringify({ alg: 'ed25519', keyId: '0123456789abcdef', publicKey: pub.publicKey }));
  const res = await runCli(['trust', 'add', lying], { home: home.dir });
  assert.equal(res.code, 1);
  assert.match(res.stderr, /does not match its public key/);
  assert.deepEqual(existsSync(home.paths.trustDir) ? readdirSync(home.paths.trustDir) : [], []);
});

test('trust remove of an unknown or malformed key id fails with a reason', async (t) => {
  const home = tempHome('trust3');
  t.after(home.cleanup);
  const unknown = await runCli(['trust', 'remove', '0123456789abcdef'], { home: home.dir });
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /is not trusted/);
  const bad = await runCli(['trust', 'remove', '../../config'], { home: home.dir });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /is not a keyId/);
});
