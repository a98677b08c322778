import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli, BIN } from '../helpers/cli.ts';
import { parseUnit } from '../../core/ops/service.ts';
import { GATEWAY_ENV, GATEWAY_ENV_WORDS, GATEWAY_NODE_FLAGS } from '../../core/gateway/node-flags.ts';

function scratch(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'carapace-service-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

/** systemd's own unquoting of one quoted word, for reading values back. */
function unquote(word: string): string {
  return word.replace(/^"|"$/g, '').replace(/%%/g, '%').replace(/\\(.)/g, '$1');
}

async function renderUnit(home: string): Promise<string> {
  const res = await runCli(['service', 'install', '--dry-run', '--platform', 'linux'], { home });
  assert.equal(res.code, 0, res.stderr);
  return res.stdout;
}

test('the systemd user unit runs node >= 24 on the carapace bin with the home set and the sandboxing options', async (t) => {
  const home = join(scratch(t), 'state home');
  const unit = parseUnit(await renderUnit(home));
  const svc = unit.Service;
  const [node, ...rest] = svc.ExecStart[0].match(/"(?:[^"\\]|\\.)*"|\S+/g)!.map(unquote);
  const flags = rest.slice(0, GATEWAY_NODE_FLAGS.length);
  const [bin, verb] = rest.slice(GATEWAY_NODE_FLAGS.length);
  assert.deepEqual(flags, [...GATEWAY_NODE_FLAGS], "the gateway's node flags");
  assert.equal(node, process.execPath);
  assert.ok(Number(spawnSync(node, ['-p', 'process.versions.node.split(".")[0]']).stdout.toString()) >= 24);
  assert.equal(bin, BIN);
  assert.equal(verb, 'start');
  assert.ok(svc.Environment.map(unquote).includes(`CARAPACE_HOME=${home}`));
  for (const [k, v] of Object.entries(GATEWAY_ENV)) assert.ok(svc.Environment.map(unquote).includes(`${k}=${v}`), `the gateway's ${k}`);
  assert.deepEqual(
    { Restart: svc.Restart, NoNewPrivileges: svc.NoNewPrivileges, ProtectSystem: svc.ProtectSystem, ProtectHome: svc.ProtectHome, PrivateTmp: svc.PrivateTmp },
    { Restart: ['on-failure'], NoNewPrivileges: ['yes'], ProtectSystem: ['strict'], ProtectHome: ['read-only'], PrivateTmp: ['no'] },
    'a home under /tmp keeps the real /tmp',
  );
  assert.deepEqual(svc.ReadWritePaths.map(unquote), [home]);
  assert.deepEqual(unit.Install.WantedBy, ['default.target']);
});

test('a home outside /tmp gets a private /tmp', async (t) => {
  const unit = parseUnit(await renderUnit('/srv/carapace'));
  assert.deepEqual(unit.Service.PrivateTmp, ['yes']);
  void t;
});

test('systemd-analyze verify accepts the unit without a warning, even for a home with a space and a %', { skip: has('systemd-analyze') ? false : 'systemd-analyze is not installed (Debian package systemd)' }, async (t) => {
  const dir = scratch(t);
  const file = join(dir, 'carapace.service');
  writeFileSync(file, await renderUnit(join(dir, 'my home 100%')));
  // System mode: the user mode needs a running user manager, which a container has not.
  const res = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
  assert.equal(res.status, 0, res.stderr);
  assert.equal(res.stderr.trim(), '', 'no warnings');
});

test('the launchd plist starts the gateway at load, restarts it on failure and is well-formed', async (t) => {
  const home = join(scratch(t), 'h&<home>');
  const res = await runCli(['service', 'install', '--dry-run', '--platform', 'darwin', '--json'], { home });
  assert.equal(res.code, 0, res.stderr);
  const { path, text } = JSON.parse(res.stdout) as { path: string; text: string };
  assert.match(path, /Library\/LaunchAgents\/ai\.carapace\.gateway\.plist$/);
  assert.match(text, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<!DOCTYPE plist/);
  const strings = [...text.matchAll(/<string>([^<]*)<\/string>/g)].map((m) => m[1].replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&amp;/g, '&'));
  assert.deepEqual(strings.slice(0, 5 + GATEWAY_NODE_FLAGS.length), ['ai.carapace.gateway', process.execPath, ...GATEWAY_NODE_FLAGS, BIN, 'start', home]);
  assert.match(text, /<key>KeepAlive<\/key>\s*<dict>\s*<key>SuccessfulExit<\/key>\s*<false\/>/);
  assert.match(text, /<key>RunAtLoad<\/key>\s*<true\/>/);
  // Balanced tags: every opened element is closed in order.
  const stack: string[] = [];
  for (const m of text.replace(/<\?xml[^>]*>|<!DOCTYPE[^>]*>/g, '').matchAll(/<(\/?)([a-z]+)(?: [^>]*?)?(\/?)>/g)) {
    if (m[3]) continue;
    if (m[1]) assert.equal(stack.pop(), m[2]);
    else stack.push(m[2]);
  }
  assert.deepEqual(stack, []);
});

test('plutil -lint accepts the plist', { skip: has('plutil') ? false : 'plutil exists only on macOS' }, async (t) => {
  const dir = scratch(t);
  const res = await runCli(['service', 'install', '--dry-run', '--platform', 'darwin'], { home: join(dir, 'home') });
  const file = join(dir, 'ai.carapace.gateway.plist');
  writeFileSync(file, res.stdout);
  const lint = spawnSync('plutil', ['-lint', file], { encoding: 'utf8' });
  assert.equal(lint.status, 0, lint.stdout + lint.stderr);
});

test('service install writes the user unit, status reports it current, uninstall removes it', { skip: process.platform === 'linux' ? false : 'the install path test uses XDG_CONFIG_HOME (Linux)' }, async (t) => {
  const dir = scratch(t);
  const env = { XDG_CONFIG_HOME: join(dir, 'config') };
  const home = join(dir, 'home');
  const install = await runCli(['service', 'install', '--no-manager', '--json'], { home, env });
  assert.equal(install.code, 0, install.stderr);
  const res = JSON.parse(install.stdout);
  assert.equal(res.path, join(dir, 'config', 'systemd', 'user', 'carapace.service'));
  assert.deepEqual(res.manager.manual, ['systemctl --user daemon-reload', 'systemctl --user enable --now carapace.service']);
  assert.equal(statSync(home).mode & 0o777, 0o700, 'the home exists for ReadWritePaths');
  const status = JSON.parse((await runCli(['service', 'status', '--no-manager', '--json'], { home, env })).stdout);
  assert.deepEqual([status.installed, status.current], [true, true]);

  const other = await runCli(['service', 'install', '--no-manager'], { home: join(dir, 'other'), env });
  assert.equal(other.code, 1);
  assert.match(other.stderr, /exists and differs .* --force/);

  const un = await runCli(['service', 'uninstall', '--no-manager', '--json'], { home, env });
  assert.equal(JSON.parse(un.stdout).removed, true);
  assert.equal(existsSync(res.path), false);
});

test('carapace start (the bin shebang) and npm start pass the same node flags and environment as the service units', () => {
  const root = new URL('../../', import.meta.url);
  const shebang = readFileSync(new URL('core/cli/bin.js', root), 'utf8').split('\n')[0];
  assert.equal(shebang, `#!/usr/bin/env -S ${GATEWAY_ENV_WORDS} node ${GATEWAY_NODE_FLAGS.join(' ')}`);
  const start = (JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { scripts: { start: string } }).scripts.start;
  assert.equal(start, `${GATEWAY_ENV_WORDS} sh core/cli/node24.sh node ${GATEWAY_NODE_FLAGS.join(' ')} core/cli/bin.js start`);
  const docker = readFileSync(new URL('Dockerfile', root), 'utf8');
  assert.ok(docker.includes(`ENTRYPOINT ["tini", "--", "node", ${GATEWAY_NODE_FLAGS.map((f) => JSON.stringify(f)).join(', ')}, "/opt/carapace/core/cli/bin.js"]`), 'the container image');
  for (const [k, v] of Object.entries(GATEWAY_ENV)) assert.match(docker, new RegExp(`^\\s+${k}=${v} \\\\$`, 'm'), `the container image's ${k}`);
  // The shebang runs: env sets the variable and node gets the flags.
  const r = spawnSync(fileURLToPath(new URL('core/cli/bin.js', root)), ['--version'], { encoding: 'utf8', env: { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH}` } });
  assert.equal(r.status, 0, r.stderr);
});
