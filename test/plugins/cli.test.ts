import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.ts';
import { tempHome } from '../helpers/home.ts';
import { makePlugin, throwawayPublisher } from '../helpers/plugins.ts';
import { publicKeyFile } from '../../core/plugins/sign.ts';

function setup(t: { after(fn: () => void): void }) {
  const home = tempHome('cli');
  t.after(home.cleanup);
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  mkdirSync(home.paths.trustDir, { recursive: true });
  const pk = publicKeyFile(pub.kp);
  writeFileSync(join(home.paths.trustDir, `${pk.keyId}.json`), JSON.stringify(pk));
  const p = makePlugin({ 'index.js': 'exports.tools = [];' }, { id: 'weather', permissions: { net: ['api.weather.test:443'] } }, pub.kp);
  t.after(p.cleanup);
  return { home, pub, p };
}

test('plugins install shows the requested permissions and installs nothing without --yes', async (t) => {
  const { home, p } = setup(t);
  const res = await runCli(['plugins', 'install', p.dir], { home: home.dir });
  assert.equal(res.code, 1);
  assert.match(res.stdout, /net:api\.weather\.test:443/);
  assert.match(res.stdout, /--yes/);
  assert.equal(existsSync(join(home.paths.pluginsDir, 'weather')), false);
});

test('plugins install --yes installs, list and verify show it, remove uninstalls', async (t) => {
  const { home, p } = setup(t);
  assert.equal((await runCli(['plugins', 'install', p.dir, '--yes'], { home: home.dir })).code, 0);
  const list = JSON.parse((await runCli(['plugins', 'list', '--json'], { home: home.dir })).stdout);
  assert.ok(list.plugins.some((r: { id: string; ok: boolean }) => r.id === 'weather' && r.ok));
  assert.equal((await runCli(['plugins', 'verify', 'weather'], { home: home.dir })).code, 0);
  assert.equal((await runCli(['plugins', 'remove', 'weather'], { home: home.dir })).code, 0);
  assert.equal(existsSync(join(home.paths.pluginsDir, 'weather')), false);
});

test('plugins verify fails with the reason when an installed file was changed', async (t) => {
  const { home, p } = setup(t);
  await runCli(['plugins', 'install', p.dir, '--yes'], { home: home.dir });
  writeFileSync(join(home.paths.pluginsDir, 'weather', '1.0.0', 'index.js'), 'evil()');
  const res = await runCli(['plugins', 'verify', 'weather'], { home: home.dir });
  assert.equal(res.code, 1);
  assert.match(res.stdout, /does not match its hash/);
});

test('plugins install refuses an unsigned folder with its reason', async (t) => {
  const { home } = setup(t);
  const u = makePlugin({ 'index.js': '' }, { id: 'nosig' }, null);
  t.after(u.cleanup);
  const res = await runCli(['plugins', 'install', u.dir, '--yes'], { home: home.dir });
  assert.equal(res.code, 1);
  assert.match(res.stderr, /refused \(unsigned\)/);
});

test('plugins grant adds a well-formed permission and rejects a malformed one', async (t) => {
  const { home, p } = setup(t);
  await runCli(['plugins', 'install', p.dir, '--yes'], { home: home.dir });
  assert.equal((await runCli(['plugins', 'grant', 'weather', 'net:other.test:443'], { home: home.dir })).code, 0);
  const bad = await runCli(['plugins', 'grant', 'weather', 'everything'], { home: home.dir });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /not a permission/);
});
