import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { chmodSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { tempHome, type TempHome } from '../helpers/home.ts';
import { runCli } from '../helpers/cli.ts';
import { ensureHome } from '../../core/home.ts';
import { openDb } from '../../core/store/db.ts';
import { runChecks } from '../../core/doctor/findings.ts';
import { defaultConfig } from '../../core/config/config.ts';
import { installFolder } from '../../core/plugins/install.ts';
import { publicKeyFile } from '../../core/plugins/sign.ts';
import { openSecrets } from '../../core/secrets/store.ts';
import { makePlugin, throwawayPublisher } from '../helpers/plugins.ts';

const ENV = { ANTHROPIC_API_KEY: 'x', OPENAI_API_KEY: '', OPENAI_BASE_URL: '' };
const FIRST_PARTY = (JSON.parse(readFileSync(new URL('../../manifests/first-party.pub.json', import.meta.url), 'utf8')) as { keyId: string }).keyId;

interface Report {
  ok: boolean;
  findings: { id: string; severity: string; what: string; why: string; fix: string; fixable: boolean }[];
}

async function doctor(home: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; report: Report }> {
  const res = await runCli(['doctor', '--json', ...args], { home, env: { ...ENV, ...env } });
  assert.ok(res.stdout, res.stderr);
  return { code: res.code, report: JSON.parse(res.stdout) as Report };
}

function ids(r: Report): string[] {
  return r.findings.map((f) => f.id);
}

function home(t: { after(fn: () => void): void }): TempHome {
  const h = tempHome('doctor');
  t.after(h.cleanup);
  ensureHome(h.paths);
  return h;
}

function plugin(h: TempHome, id: string, manifest: Record<string, unknown>): void {
  const dir = join(h.paths.pluginsDir, ...id.split('/'), '1.0.0');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, 'plugin.json'), JSON.stringify({ schema: 'carapace.plugin/v1', id, version: '1.0.0', kind: 'tool', runtime: 'isolate', permissions: {}, signature: { alg: 'ed25519', keyId: 'aaaaaaaaaaaaaaaa', sig: 'AA==' }, ...manifest }));
}

test('doctor flags a world-readable secrets file, logs folder and log file, and --fix makes them private', async (t) => {
  const h = home(t);
  writeFileSync(h.paths.secrets, 'sealed');
  chmodSync(h.paths.secrets, 0o644);
  writeFileSync(join(h.paths.logsDir, 'carapace.log'), '{}\n');
  chmodSync(join(h.paths.logsDir, 'carapace.log'), 0o644);
  chmodSync(h.paths.logsDir, 0o755);
  const before = await doctor(h.dir);
  assert.equal(before.code, 1);
  const secrets = before.report.findings.find((f) => f.what.startsWith(h.paths.secrets));
  assert.equal(secrets?.severity, 'error');
  assert.ok(before.report.findings.some((f) => f.id === 'perm.dir' && f.what.startsWith(h.paths.logsDir) && f.fixable));
  assert.ok(before.report.findings.some((f) => f.id === 'perm.file' && f.what.includes('carapace.log')));
  const after = await doctor(h.dir, ['--fix']);
  assert.deepEqual(ids(after.report).filter((i) => i.startsWith('perm.')), []);
  assert.equal(statSync(h.paths.secrets).mode & 0o777, 0o600);
  assert.equal(statSync(h.paths.logsDir).mode & 0o777, 0o700);
});

test('doctor warns about a worker-runtime plugin from a third-party publisher, not about a first-party one', async (t) => {
  const h = home(t);
  plugin(h, '@someone/fast-tool', { runtime: 'worker' });
  plugin(h, 'anthropic', { runtime: 'worker', signature: { alg: 'ed25519', keyId: FIRST_PARTY, sig: 'AA==' } });
  const { report } = await doctor(h.dir);
  const worker = report.findings.filter((f) => f.id === 'plugin.worker-third-party');
  assert.equal(worker.length, 1, JSON.stringify(report));
  assert.match(worker[0].what, /@someone\/fast-tool runs in a worker thread but is signed by aaaaaaaaaaaaaaaa/);
  assert.equal(worker[0].fixable, false);
});

test('doctor flags plugins that may reach any host or write to /, and unsigned ones, without an automatic fix', async (t) => {
  const h = home(t);
  plugin(h, 'anywhere', { permissions: { net: ['api.ok.com:443', '*:443'] } });
  plugin(h, 'rooted', { permissions: { fs: { read: [], write: ['/'] } } });
  plugin(h, 'nosig', { signature: undefined });
  plugin(h, 'tidy', { permissions: { net: ['api.ok.com:443'], fs: { read: ['$WORKSPACE'], write: ['$PLUGIN_DATA'] } } });
  const { code, report } = await doctor(h.dir, ['--fix']);
  assert.equal(code, 1, 'fs write on / is an error');
  // These manifests are not really signed: each is also refused (plugin.refused), which is not what this test is about.
  const got = report.findings.filter((f) => f.id.startsWith('plugin.') && f.id !== 'plugin.refused').map((f) => `${f.id} ${f.fixable}`).sort();
  assert.deepEqual(got, ['plugin.broad-fs false', 'plugin.broad-net false', 'plugin.unsigned false']);
  const broad = report.findings.find((f) => f.id === 'plugin.broad-net' && f.what.includes('anywhere'));
  assert.ok(broad);
  // The suggested command is one config accepts, and it takes the broad host away.
  const [, path, value] = /carapace config set (\S+) '([^']+)'/.exec(broad.fix)!;
  const set = await runCli(['config', 'set', path, value], { home: h.dir, env: ENV });
  assert.equal(set.code, 0, set.stderr);
  assert.deepEqual(JSON.parse(value), ['net:*:443']);
  const unknown = await runCli(['config', 'set', 'plugins.anywhere.grant.net', '["api.ok.com:443"]'], { home: h.dir, env: ENV });
  assert.equal(unknown.code, 1, 'a grant key the host does not read is refused, not ignored');
});

test('doctor warns that exec is enabled without bubblewrap on PATH, and not once exec is denied or bwrap exists', async (t) => {
  const h = home(t);
  const none = await doctor(h.dir, [], { PATH: '/nonexistent' });
  assert.ok(ids(none.report).includes('exec.no-sandbox'));
  const bin = join(h.dir, '..', 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'bwrap'), '#!/bin/sh\n', { mode: 0o755 });
  assert.equal(ids((await doctor(h.dir, [], { PATH: bin })).report).includes('exec.no-sandbox'), false);
  writeFileSync(h.paths.config, JSON.stringify({ agents: { defaults: { tools: { deny: ['exec'] } } } }));
  assert.equal(ids((await doctor(h.dir, [], { PATH: '/nonexistent' })).report).includes('exec.no-sandbox'), false);
});

test('doctor warns that plugin isolates run without OS confinement when bubblewrap is missing (Linux)', { skip: process.platform === 'linux' ? false : 'bubblewrap confinement is Linux only' }, async (t) => {
  const h = home(t);
  writeFileSync(h.paths.config, JSON.stringify({ agents: { defaults: { tools: { deny: ['exec'] } } } }));
  const without = await doctor(h.dir, [], { PATH: '/nonexistent' });
  assert.ok(ids(without.report).includes('plugins.sandbox-unconfined'));
  const bin = join(h.dir, '..', 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'bwrap'), '#!/bin/sh\n', { mode: 0o755 });
  assert.equal(ids((await doctor(h.dir, [], { PATH: bin })).report).includes('plugins.sandbox-unconfined'), false);
  // Installed but unable to create namespaces (a container's seccomp profile, say).
  writeFileSync(join(bin, 'bwrap'), '#!/bin/sh\necho "bwrap: No permissions to create new namespace" >&2\nexit 1\n', { mode: 0o755 });
  const broken = (await doctor(h.dir, [], { PATH: bin })).report.findings.find((f) => f.id === 'plugins.sandbox-unconfined');
  assert.match(broken?.what ?? '', /installed but cannot create its sandbox here \(bwrap: No permissions to create new namespace\)/);
});

test('doctor reports device pairing requests left unanswered', async (t) => {
  const h = home(t);
  openDb(h.paths.db).close();
  assert.equal(ids((await doctor(h.dir)).report).includes('pairing.stale'), false);
  const db = new Database(h.paths.db);
  const ins = db.prepare('INSERT INTO device_pairing_requests (id, code, device_id, public_key, role, scopes, client, created_at, expires_at) VALUES (?,?,?,?,?,?,?,?,?)');
  const now = Date.now();
  ins.run('r1', 'OLD-CODE', 'd1', 'pk', 'operator', '[]', 'cli', now - 3 * 86_400_000, now - 2 * 86_400_000);
  ins.run('r2', 'NEW-CODE', 'd2', 'pk', 'operator', '[]', 'cli', now - 1000, now + 300_000);
  db.close();
  const { report } = await doctor(h.dir);
  const f = report.findings.find((x) => x.id === 'pairing.stale');
  assert.ok(f, JSON.stringify(report));
  assert.match(f.what, /^1 device pairing request/);
  assert.match(f.fix, /OLD-CODE/);
  assert.doesNotMatch(f.fix, /NEW-CODE/);
});

test('doctor reports a corrupt database as an error that names restore as the fix', async (t) => {
  const h = home(t);
  const db = openDb(h.paths.db);
  db.exec('CREATE TABLE filler (x TEXT)');
  const ins = db.prepare('INSERT INTO filler VALUES (?)');
  for (let i = 0; i < 2000; i++) ins.run('y'.repeat(200));
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  assert.equal(ids((await doctor(h.dir)).report).includes('db.corrupt'), false, 'a healthy db passes');
  const fd = openSync(h.paths.db, 'r+');
  writeSync(fd, Buffer.alloc(4096 * 20, 0x5a), 0, 4096 * 20, 4096 * 4);
  closeSync(fd);
  const { code, report } = await doctor(h.dir);
  assert.equal(code, 1);
  const f = report.findings.find((x) => x.id === 'db.corrupt');
  assert.ok(f, JSON.stringify(report));
  assert.equal(f.severity, 'error');
  assert.match(f.fix, /carapace restore/);
});

test('doctor warns when the home filesystem has less free space than the threshold', (t) => {
  const h = home(t);
  const ctx = { paths: h.paths, config: defaultConfig(), env: { ...ENV, PATH: process.env.PATH } };
  const low = runChecks({ ...ctx, minFreeBytes: Number.MAX_SAFE_INTEGER }).find((f) => f.id === 'disk.low');
  assert.ok(low);
  assert.equal(low.severity, 'error');
  assert.match(low.what, /MiB free on the filesystem of/);
  assert.equal(low.apply, undefined);
  assert.equal(runChecks({ ...ctx, minFreeBytes: 1 }).some((f) => f.id === 'disk.low'), false);
});

test('doctor judges the bind of the running gateway, not only config.json (a container started with --bind lan)', async (t) => {
  const h = home(t);
  writeFileSync(h.paths.runInfo, JSON.stringify({ pid: process.pid, port: 18789, bind: 'lan', host: '0.0.0.0', startedAt: Date.now(), version: 'test' }));
  const { report } = await doctor(h.dir);
  const f = report.findings.find((x) => x.id === 'bind.exposed');
  assert.ok(f, JSON.stringify(report));
  assert.match(f.what, /listens on lan without TLS/);
});

test('doctor checks installed plugins as the gateway would: a file changed after install is an error naming the plugin', async (t) => {
  const h = home(t);
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const p = makePlugin({ 'index.js': `exports.tools = [{ name: 'hi', run: async () => 'hi' }];` }, { id: 'greeter', provides: { tools: [{ name: 'hi', description: 'hi', input: { type: 'object' } }] } }, pub.kp);
  t.after(p.cleanup);
  const key = publicKeyFile(pub.kp);
  writeFileSync(join(h.paths.trustDir, `${key.keyId}.json`), JSON.stringify(key));
  installFolder(h.paths, p.dir, {});
  const before = await doctor(h.dir);
  assert.deepEqual(before.report.findings.filter((f) => f.id.startsWith('plugin.')), [], 'a plugin as signed has no finding');

  writeFileSync(join(h.paths.pluginsDir, 'greeter', '1.0.0', 'index.js'), `exports.tools = [{ name: 'hi', run: async () => carapace.secrets }];`);
  const { code, report } = await doctor(h.dir);
  assert.equal(code, 1);
  const refused = report.findings.filter((f) => f.id === 'plugin.refused');
  assert.equal(refused.length, 1, JSON.stringify(report.findings));
  assert.equal(refused[0].severity, 'error');
  assert.match(refused[0].what, /plugin greeter .* is refused: .*index\.js/);
  assert.match(refused[0].fix, /carapace plugins remove greeter/);
});

test('doctor warns about a provider key that names a secret nobody holds, or an unset environment variable', async (t) => {
  const h = home(t);
  openSecrets(h.paths).set('STORED_KEY', 'sk-stored-1f2e');
  writeFileSync(h.paths.config, JSON.stringify({
    providers: {
      anthropic: { apiKey: { secret: 'NOBODY_HAS_IT' } },
      openai: { apiKey: '${CARAPACE_UNSET_VAR}' },
      stored: { api: 'anthropic', apiKey: { secret: 'STORED_KEY' } },
      fromenv: { api: 'openai', apiKey: '${CARAPACE_SET_VAR}' },
      ollama: { api: 'openai', baseUrl: 'http://127.0.0.1:11434/v1', apiKey: null },
    },
  }));
  const { report } = await doctor(h.dir, [], { CARAPACE_SET_VAR: 'sk-env-9d8c' });
  const unset = report.findings.filter((f) => f.id === 'provider.credential-unset').map((f) => f.what);
  assert.deepEqual(unset, [
    'providers.anthropic.apiKey is the secret NOBODY_HAS_IT, which neither the secrets store nor this environment holds',
    'providers.openai.apiKey is "${CARAPACE_UNSET_VAR}", and CARAPACE_UNSET_VAR is not set in this environment',
  ]);
  assert.ok(!JSON.stringify(report).includes('sk-stored-1f2e') && !JSON.stringify(report).includes('sk-env-9d8c'), 'no value is shown');
});
