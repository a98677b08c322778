import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { setImmediate as tick } from 'node:timers/promises';
import { tempHome, type TempHome } from '../helpers/home.ts';
import { runCli } from '../helpers/cli.ts';
import { spawnGateway } from '../helpers/gateway.ts';
import { openDb } from '../../core/store/db.ts';
import { openAuditLog } from '../../core/audit.ts';
import { tarEnd, tarHeader, tarPadding } from '../../core/ops/tar.ts';

const MANIFEST = Buffer.from(JSON.stringify({ format: 1, carapace: 'test', createdAt: 1, entries: 1 }));

function fileEntry(name: string, data: Buffer, patch?: (h: Buffer) => void): Buffer[] {
  let h = tarHeader({ name, type: 'file', mode: 0o600, size: data.length, mtime: 0 });
  if (patch) {
    h = Buffer.from(h);
    patch(h);
    h.write('        ', 148, 'ascii');
    let sum = 0;
    for (const b of h.subarray(0, 512)) sum += b;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  }
  return [h, data, tarPadding(data.length)];
}

function archive(dir: string, ...entries: Buffer[][]): string {
  const file = join(dir, 'crafted.tar.gz');
  writeFileSync(file, gzipSync(Buffer.concat([...fileEntry('carapace-backup.json', MANIFEST), ...entries.flat(), tarEnd()])));
  return file;
}

function allModes(dir: string, out: { path: string; mode: number; dir: boolean }[] = []) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    out.push({ path: p, mode: statSync(p).mode & 0o777, dir: e.isDirectory() });
    if (e.isDirectory()) allModes(p, out);
  }
  return out;
}

async function restoreRefused(t: { after(fn: () => void): void }, entry: Buffer[], reason: RegExp): Promise<TempHome> {
  const home = tempHome('restore');
  t.after(home.cleanup);
  const file = archive(join(home.dir, '..'), entry);
  const res = await runCli(['restore', file, '--json'], { home: home.dir });
  assert.equal(res.code, 1);
  assert.match(res.stderr, reason);
  assert.equal(existsSync(home.paths.config), false, 'nothing was restored');
  return home;
}

test('a backup taken under write load from a running gateway restores to an intact database whose audit chain verifies', async (t) => {
  const home = tempHome('backup');
  t.after(home.cleanup);
  await runCli(['config', 'set', 'logging.level', 'warn'], { home: home.dir });
  mkdirSync(join(home.dir, 'workspace', 'skills', 'hello'), { recursive: true });
  writeFileSync(join(home.dir, 'workspace', 'skills', 'hello', 'SKILL.md'), '---\nname: hello\n---\n');
  await runCli(['secrets', 'set', 'OPENAI_API_KEY'], { home: home.dir, input: 'sk-backup-test' });
  const gw = await spawnGateway(home.dir);
  t.after(() => gw.stop());

  // A second writer appends to the live audit log for as long as the backup runs.
  const db = openDb(home.paths.db);
  t.after(() => db.close());
  const audit = openAuditLog(db, home.paths);
  let writing = true;
  let appended = 0;
  const load = (async () => {
    while (writing) {
      audit.append({ actor: 'test', action: 'load', data: { n: appended, pad: 'x'.repeat(2000) } });
      appended++;
      await tick();
    }
  })();
  const out = join(home.dir, '..', 'snap.tar.gz');
  const backup = await runCli(['backup', '--out', out, '--json'], { home: home.dir });
  writing = false;
  await load;
  assert.equal(backup.code, 0, backup.stderr);
  assert.ok(appended > 0, 'the load ran during the backup');
  assert.equal(statSync(out).mode & 0o777, 0o600);

  const fresh = tempHome('restored');
  t.after(fresh.cleanup);
  const restore = await runCli(['restore', out, '--json'], { home: fresh.dir });
  assert.equal(restore.code, 0, restore.stderr);

  const restored = new Database(fresh.paths.db, { readonly: true });
  t.after(() => restored.close());
  assert.equal(restored.pragma('integrity_check', { simple: true }), 'ok');
  const verify = await runCli(['audit', 'verify', '--json'], { home: fresh.dir });
  assert.equal(verify.code, 0, verify.stderr);
  assert.equal(JSON.parse(verify.stdout).ok, true);
  assert.deepEqual(readFileSync(fresh.paths.gatewayKey), readFileSync(home.paths.gatewayKey));
  assert.deepEqual(readFileSync(fresh.paths.secrets), readFileSync(home.paths.secrets), 'secrets.enc travels sealed');
  assert.equal(readFileSync(join(fresh.dir, 'workspace', 'skills', 'hello', 'SKILL.md'), 'utf8'), '---\nname: hello\n---\n');
  const secrets = await runCli(['secrets', 'list', '--json'], { home: fresh.dir });
  assert.deepEqual(JSON.parse(secrets.stdout), { secrets: ['OPENAI_API_KEY'] });
});

test('restore refuses while a gateway runs on the home, naming its pid', async (t) => {
  const src = tempHome('src');
  t.after(src.cleanup);
  await runCli(['config', 'set', 'logging.level', 'warn'], { home: src.dir });
  const out = join(src.dir, '..', 'b.tar.gz');
  assert.equal((await runCli(['backup', '--out', out], { home: src.dir })).code, 0);
  const live = tempHome('live');
  t.after(live.cleanup);
  const gw = await spawnGateway(live.dir);
  t.after(() => gw.stop());
  const res = await runCli(['backup', 'restore', out, '--force'], { home: live.dir });
  assert.equal(res.code, 1);
  assert.match(res.stderr, new RegExp(`a gateway \\(pid ${gw.child.pid}\\) is running`));
});

test('restore refuses an archive path that climbs out with ..', async (t) => {
  const home = await restoreRefused(t, fileEntry('workspace/../../escaped.txt', Buffer.from('x')), /climbs out with "\.\."/);
  assert.equal(existsSync(join(home.dir, '..', '..', 'escaped.txt')), false);
});

test('restore refuses an absolute archive path', async (t) => {
  await restoreRefused(t, fileEntry('/tmp/carapace-absolute-escape.txt', Buffer.from('x')), /is an absolute path/);
  assert.equal(existsSync('/tmp/carapace-absolute-escape.txt'), false);
});

test('restore refuses a symlink in the archive', async (t) => {
  const link = fileEntry('workspace/passwd', Buffer.alloc(0), (h) => {
    h.write('2', 156, 'ascii');
    h.write('/etc/passwd', 157, 'utf8');
  });
  await restoreRefused(t, link, /links are not allowed/);
});

test('restore refuses names outside the state layout and a file that is not a backup', async (t) => {
  await restoreRefused(t, fileEntry('node_modules/x.js', Buffer.from('x')), /not part of a Carapace state directory/);
  const home = tempHome('restore');
  t.after(home.cleanup);
  mkdirSync(home.dir, { recursive: true });
  const junk = join(home.dir, '..', 'junk.tar.gz');
  writeFileSync(junk, 'not gzip at all');
  const res = await runCli(['restore', junk], { home: home.dir });
  assert.equal(res.code, 1);
  assert.match(res.stderr, /not a gzipped backup/);
});

test('restore gives folders 0700 and files 0600 whatever modes the archive carries', async (t) => {
  const home = tempHome('modes');
  t.after(home.cleanup);
  const stage = join(home.dir, '..', 'stage');
  mkdirSync(join(stage, 'workspace', 'memory'), { recursive: true });
  writeFileSync(join(stage, 'carapace-backup.json'), MANIFEST);
  writeFileSync(join(stage, 'config.json'), '{}');
  writeFileSync(join(stage, 'workspace', 'memory', 'note.md'), 'hi');
  chmodSync(join(stage, 'workspace'), 0o777);
  chmodSync(join(stage, 'workspace', 'memory'), 0o755);
  chmodSync(join(stage, 'config.json'), 0o666);
  chmodSync(join(stage, 'workspace', 'memory', 'note.md'), 0o644);
  const file = join(home.dir, '..', 'loose.tar.gz');
  execFileSync('tar', ['-czf', file, '-C', stage, 'carapace-backup.json', 'config.json', 'workspace']);
  const res = await runCli(['restore', file], { home: home.dir });
  assert.equal(res.code, 0, res.stderr);
  const modes = allModes(home.dir);
  assert.ok(modes.some((m) => m.path.endsWith('note.md')));
  for (const m of modes) assert.equal(m.mode, m.dir ? 0o700 : 0o600, `${m.path} is ${m.mode.toString(8)}`);
});
