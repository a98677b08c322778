import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnGateway } from '../helpers/gateway.ts';
import { openDb } from '../../core/store/db.ts';
import { connectOwner } from '../../core/cli/connect.ts';
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
  assert.equal(res.stderr, 'carapace plugins: weather not installed: re-run with --yes to accept these permissions\n', 'the failure is said on stderr, in one line');
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
  assert.match(res.stderr, /^carapace plugins: weather failed verification: reinstall from a trusted source, or remove\n$/);
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

function scratch(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'carapace-cli-src-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function auditActions(home: ReturnType<typeof tempHome>): { action: string; data: string }[] {
  const db = openDb(home.paths.db);
  try {
    return db.prepare('SELECT action, data FROM audit ORDER BY seq').all() as { action: string; data: string }[];
  } finally {
    db.close();
  }
}

test('a plugin folder under a hidden directory installs its files', async (t) => {
  const { home, p } = setup(t);
  const src = join(scratch(t), '.plugins', 'weather');
  cpSync(p.dir, src, { recursive: true });
  const res = await runCli(['plugins', 'install', src, '--yes'], { home: home.dir });
  assert.equal(res.code, 0, res.stderr);
  assert.deepEqual(readdirSync(join(home.paths.pluginsDir, 'weather', '1.0.0')).sort(), ['index.js', 'plugin.json']);
  assert.equal((await runCli(['plugins', 'verify', 'weather'], { home: home.dir })).code, 0);
});

test('plugins install takes a .tgz made with tar, keeps the version it replaces for --rollback, and refuses an archive with a symlink', async (t) => {
  const { home, pub, p } = setup(t);
  const dir = scratch(t);
  const v1 = join(dir, 'weather-1.0.0.tgz');
  execFileSync('tar', ['czf', v1, '-C', p.dir, '.']);
  const first = await runCli(['plugins', 'install', v1, '--yes'], { home: home.dir });
  assert.equal(first.code, 0, first.stderr);
  const p2 = makePlugin({ 'index.js': 'exports.tools = []; // 2' }, { id: 'weather', version: '2.0.0', permissions: { net: ['api.weather.test:443'] } }, pub.kp);
  t.after(p2.cleanup);
  const v2 = join(dir, 'weather-2.0.0.tgz');
  execFileSync('tar', ['czf', v2, '-C', p2.dir, '.']);
  assert.equal((await runCli(['plugins', 'install', v2, '--yes'], { home: home.dir })).code, 0);
  assert.deepEqual(readdirSync(join(home.paths.pluginsDir, 'weather')).filter((n) => /^\d/.test(n)).sort(), ['1.0.0', '2.0.0']);
  const back = await runCli(['plugins', 'install', 'weather', '--rollback'], { home: home.dir });
  assert.match(back.stdout, /rolled back weather to 1\.0\.0 \(from 2\.0\.0\)/);

  const evil = join(dir, 'evil');
  cpSync(p.dir, evil, { recursive: true });
  symlinkSync('/etc/passwd', join(evil, 'link'));
  const bad = join(dir, 'evil.tgz');
  execFileSync('tar', ['czf', bad, '-C', evil, '.']);
  const refused = await runCli(['plugins', 'install', bad, '--yes'], { home: home.dir });
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /refused \(symlink\)/);
  const last = auditActions(home).at(-1)!;
  assert.equal(last.action, 'plugin.install.refused');
  assert.match(last.data, /symlink/);
  assert.deepEqual(readdirSync(join(home.paths.pluginsDir, '.staging')), [], 'nothing unpacked is left behind');
});

test('install, grant and remove from the CLI reach a running gateway without a restart', async (t) => {
  const { home, p } = setup(t);
  const gw = await spawnGateway(home.dir);
  t.after(() => gw.stop());
  const installed = await runCli(['plugins', 'install', p.dir, '--yes'], { home: home.dir });
  assert.match(installed.stdout, /the running gateway reloaded its plugins \(added: weather;/);
  const granted = await runCli(['plugins', 'grant', 'weather', 'net:other.test:443'], { home: home.dir });
  assert.match(granted.stdout, /replaced: weather;/);
  const removed = await runCli(['plugins', 'remove', 'weather'], { home: home.dir });
  assert.match(removed.stdout, /removed: weather\)/);
});

test('an admin device installs, grants and removes plugins over the bus, each audited under the device', async (t) => {
  const { home, p } = setup(t);
  const gw = await spawnGateway(home.dir);
  t.after(() => gw.stop());
  const client = (await connectOwner(home.paths))!;
  t.after(() => client.close());
  type Err = { code: string; details?: { reason?: string; pointer?: string } };
  const fails = (method: string, params: Record<string, unknown>) => client.request(method, params).then(() => assert.fail(`${method} succeeded`), (e: Err) => e);

  const shown = await client.request<{ installed: boolean; requested: string[] }>('plugins.install', { spec: p.dir });
  assert.equal(shown.installed, false, 'without yes: shown, not installed');
  assert.deepEqual(shown.requested, ['net:api.weather.test:443']);
  assert.equal(existsSync(join(home.paths.pluginsDir, 'weather')), false);

  const done = await client.request<{ installed: boolean; reload: { added: string[] } }>('plugins.install', { spec: p.dir, yes: true });
  assert.deepEqual(done.reload.added, ['weather']);
  const listed = await client.request<{ plugins: { id: string }[] }>('plugins.list', {});
  assert.ok(listed.plugins.some((x) => x.id === 'weather'), 'the running host has it');

  const granted = await client.request<{ granted: string[]; reload: { replaced: string[] } }>('plugins.grant', { id: 'weather', permission: 'net:other.test:443' });
  assert.ok(granted.granted.includes('net:other.test:443'));
  assert.deepEqual(granted.reload.replaced, ['weather']);
  assert.equal((await fails('plugins.grant', { id: 'weather', permission: 'everything' })).details?.pointer, '/permission');

  const unsigned = makePlugin({ 'index.js': '' }, { id: 'nosig' }, null);
  t.after(unsigned.cleanup);
  const refused = await fails('plugins.install', { spec: unsigned.dir, yes: true });
  assert.equal(refused.code, 'FORBIDDEN');
  assert.equal(refused.details?.reason, 'unsigned');
  assert.equal((await fails('plugins.install', { spec: 'relative/dir', yes: true })).code, 'INVALID_REQUEST');

  const removed = await client.request<{ reload: { removed: string[] } }>('plugins.remove', { id: 'weather' });
  assert.deepEqual(removed.reload.removed, ['weather']);
  assert.equal((await fails('plugins.remove', { id: 'weather' })).code, 'NOT_FOUND');

  const audit = auditActions(home).filter((r) => r.action.startsWith('plugin.') && !r.action.startsWith('plugin.reload') && !r.action.startsWith('plugin.load'));
  assert.deepEqual(audit.map((r) => r.action), ['plugin.install', 'plugin.grant', 'plugin.install.refused', 'plugin.remove']);
  const actors = (openDb(home.paths.db).prepare("SELECT DISTINCT actor FROM audit WHERE action IN ('plugin.install', 'plugin.grant', 'plugin.remove')").all() as { actor: string }[]).map((r) => r.actor);
  assert.equal(actors.length, 1);
  assert.match(actors[0], /^device:/, 'the calling device, not the cli');
});
