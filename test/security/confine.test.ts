import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { confinedArgs, findBwrap } from '../../core/plugins/confine.ts';
import { REPO_ROOT } from '../../core/plugins/manifest.ts';
import { startHost } from '../helpers/plugin-host.ts';
import { SandboxHost } from '../../core/plugins/isolate-runtime.ts';
import { createLogHub } from '../../core/log/logger.ts';
import type { LoadSpec } from '../../core/plugins/runtime.ts';
import { tempHome } from '../helpers/home.ts';

const bwrap = findBwrap();
const skip = bwrap ? false : 'bubblewrap is not installed (listed in .ci/apt-packages)';

// What native code would find if it escaped an isolate: the probe runs in the
// sandbox host's confinement and tries what an attacker would try.
const PROBE = `
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { createRequire } from 'node:module';
const out = {};
const attempt = async (name, fn) => { try { await fn(); out[name] = 'ALLOWED'; } catch (e) { out[name] = e.code ?? e.message; } };
await attempt('readSecrets', () => readFileSync(process.argv[2]));
await attempt('readPasswd', () => readFileSync('/etc/passwd'));
await attempt('writeCode', () => writeFileSync(process.argv[3], 'planted'));
await attempt('writeRoot', () => writeFileSync('/planted', 'x'));
await attempt('readGitConfig', () => readFileSync(process.argv[6]));
await attempt('connect', () => new Promise((res, rej) => connect(Number(process.argv[4]), '127.0.0.1').once('connect', res).once('error', rej)));
const ivm = createRequire(process.argv[5])('isolated-vm');
out.isolate = new ivm.Isolate({ memoryLimit: 16 }).createContextSync().evalSync('6 * 7');
process.stdout.write(JSON.stringify(out));
`;

test('the sandbox host confinement: no home, no rest of the tree, no network, nothing writable, and isolates still run', { skip }, async (t) => {
  const home = tempHome('confine');
  t.after(home.cleanup);
  mkdirSync(home.dir, { recursive: true });
  writeFileSync(join(home.dir, 'secrets.enc'), 'the sealed secrets');
  const probeDir = mkdtempSync(join(tmpdir(), 'carapace-probe-'));
  t.after(() => rmSync(probeDir, { recursive: true, force: true }));
  const probe = join(probeDir, 'probe.mjs');
  writeFileSync(probe, PROBE);
  const server = createServer((s) => s.end('hello'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.after(() => server.close());
  const args = confinedArgs({ node: process.execPath, execArgv: ['--no-node-snapshot'], script: probe, readOnly: [probe] });
  const child = spawn(bwrap!, [...args, join(home.dir, 'secrets.enc'), join(REPO_ROOT, 'core', 'plugins', 'sandbox-host.js'), String((server.address() as AddressInfo).port), join(REPO_ROOT, 'package.json'), join(REPO_ROOT, '.git', 'config')], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise((r) => child.once('exit', r));
  assert.equal(code, 0, stderr);
  const out = JSON.parse(stdout) as Record<string, unknown>;
  assert.equal(out.isolate, 42, 'isolated-vm works in the confinement');
  assert.notEqual(out.readSecrets, 'ALLOWED', 'the home is not visible');
  assert.notEqual(out.readPasswd, 'ALLOWED', '/etc is not visible');
  assert.equal(out.writeCode, 'EROFS', 'its own code is read-only');
  assert.equal(out.writeRoot, 'EROFS', 'so is everything else');
  assert.notEqual(out.readGitConfig, 'ALLOWED', 'the rest of the tree (.git/config may hold a token) is not visible');
  assert.notEqual(out.connect, 'ALLOWED', 'no network, not even loopback');
});

test('the gateway runs the sandbox host in its own network and mount namespaces', { skip }, async (t) => {
  const fx = await startHost(t, [], null);
  assert.match((await fx.host.invokeTool('clock_now', {}, { agentId: 'main', sessionKey: 's' })).content, /UTC/);
  const ours = { net: readlinkSync('/proc/self/ns/net'), mnt: readlinkSync('/proc/self/ns/mnt') };
  const hosts = descendants(process.pid).filter((pid) => cmdline(pid).some((a) => a.endsWith('sandbox-host.js')) && !cmdline(pid)[0].endsWith('bwrap'));
  assert.equal(hosts.length, 1, 'one sandbox host process');
  assert.deepEqual(fx.host.status().sandboxHost, { confined: true }, 'status says so');
  assert.notEqual(readlinkSync(`/proc/${hosts[0]}/ns/net`), ours.net);
  assert.notEqual(readlinkSync(`/proc/${hosts[0]}/ns/mnt`), ours.mnt);
});

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

function descendants(pid: number): number[] {
  const out: number[] = [];
  const walk = (p: number) => {
    let kids: number[] = [];
    try {
      for (const task of readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) kids.push(Number(task));
    } catch {
      kids = [];
    }
    for (const k of kids) {
      out.push(k);
      walk(k);
    }
  };
  walk(pid);
  return out;
}

test('where bubblewrap cannot start the host (no user namespaces, say), plugins still run and the log says they are unconfined', async (t) => {
  const bin = mkdtempSync(join(tmpdir(), 'carapace-fake-bwrap-'));
  t.after(() => rmSync(bin, { recursive: true, force: true }));
  writeFileSync(join(bin, 'bwrap'), '#!/bin/sh\necho "bwrap: No permissions to create new namespace" >&2\nexit 1\n', { mode: 0o755 });
  const savedPath = process.env.PATH;
  process.env.PATH = `${bin}:${savedPath}`;
  t.after(() => (process.env.PATH = savedPath));
  const fx = await startHost(t, [], null);
  assert.match((await fx.host.invokeTool('clock_now', {}, { agentId: 'main', sessionKey: 's' })).content, /UTC/);
  const warning = fx.logs.find((l) => l.msg === 'the sandbox host runs without OS confinement');
  assert.ok(warning, JSON.stringify(fx.logs));
  assert.match(String(warning.reason), /bubblewrap could not start it: sandbox host exited \(1\)/);
  assert.equal(fx.host.status().sandboxHost?.confined, false, 'status says so too');

  // A plugin loaded later joins the same (unconfined) host, and both keep their capabilities.
  const sb = new SandboxHost(hubLogger());
  const code = `export const tools = [{ name: 't', run: async () => 'kv ' + JSON.stringify(await carapace.kv.get('x')) }];`;
  const spec = (id: string): LoadSpec => ({ id, runtime: 'isolate', entry: 'index.js', files: new Map([['index.js', Buffer.from(code)]]), dir: '/nonexistent', memoryMb: 16, callTimeoutMs: 5000, cpuMsPerCall: 1000, maxPending: 8, config: {} });
  const handler = async (method: string) => `value for ${method}`;
  const a = await sb.load(spec('a'), handler);
  t.after(() => sb.close());
  assert.deepEqual(await a.call('tool', ['t', {}, {}]), { content: 'kv "value for kv.get"' });
  const b = await sb.load(spec('b'), handler);
  assert.deepEqual(await a.call('tool', ['t', {}, {}]), { content: 'kv "value for kv.get"' }, 'the first plugin still gets capability answers');
  assert.deepEqual(await b.call('tool', ['t', {}, {}]), { content: 'kv "value for kv.get"' });
  const hosts = descendants(process.pid).filter((pid) => cmdline(pid).some((x) => x.endsWith('sandbox-host.js')));
  assert.equal(hosts.length, 2, 'one host for the plugin host fixture, one for this SandboxHost: no stray second start');
});

function hubLogger() {
  return createLogHub({ stream: null, level: 'debug' }).logger;
}
