import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { runCli } from '../helpers/cli.ts';
import { main } from '../../core/cli/main.ts';
import { PassThrough } from 'node:stream';
import { tempHome } from '../helpers/home.ts';

test('--help lists the verbs and every verb has its own --help', async () => {
  const top = await runCli(['--help']);
  assert.equal(top.code, 0);
  const verbs = [...top.stdout.matchAll(/^ {2}([a-z]+) {2,}/gm)].map((m) => m[1]);
  assert.ok(verbs.length >= 4, top.stdout);
  for (const verb of ['start', 'status', 'config', 'doctor']) assert.ok(verbs.includes(verb), verb);
  // In-process for each verb (the real binary is exercised above): the same main(), no process per verb.
  for (const verb of verbs) {
    const out = new PassThrough();
    let text = '';
    out.on('data', (d) => (text += d));
    const code = await main([verb, '--help'], { stdout: out, stderr: out });
    assert.equal(code, 0, `${verb} --help`);
    assert.match(text, new RegExp(`^usage: carapace ${verb}`), `${verb} --help prints its usage`);
  }
});

test('an unknown verb or option is a usage error (exit 2)', async () => {
  const unknown = await runCli(['frobnicate']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown verb "frobnicate"/);
  const option = await runCli(['status', '--frob']);
  assert.equal(option.code, 2);
  assert.match(option.stderr, /--frob/);
  const sub = await runCli(['config', 'explode']);
  assert.equal(sub.code, 2);
});

test('start refuses a bad --port or --bind as a usage error without touching the home', async (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  const port = await runCli(['start', '--port', '99999'], { home: home.dir });
  assert.equal(port.code, 2);
  for (const value of ['everywhere', '1.2.3']) {
    const bind = await runCli(['start', '--bind', value], { home: home.dir });
    assert.equal(bind.code, 2, value);
    assert.match(bind.stderr, /--bind must be loopback, lan or an IP address/);
  }
  assert.equal(existsSync(home.dir), false);
});

test('status --json prints exactly one JSON document when no gateway runs', async (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  const res = await runCli(['status', '--json'], { home: home.dir });
  assert.equal(res.code, 0);
  assert.deepEqual(JSON.parse(res.stdout).gateway, { up: false });
});

test('on a Node older than 24 the command says so in one line and exits 1', { skip: oldNode() ? false : 'no Node older than 24 at /usr/bin/node on this machine' }, async () => {
  const res = await runCli(['status'], { node: oldNode()! });
  assert.equal(res.code, 1);
  assert.equal(res.stderr.trim().split('\n').length, 1);
  assert.match(res.stderr, /needs Node\.js 24 or newer/);
});

function oldNode(): string | null {
  for (const candidate of ['/usr/bin/node', '/usr/local/bin/node']) {
    if (!existsSync(candidate)) continue;
    try {
      const major = Number(execFileSync(candidate, ['-p', 'process.versions.node.split(".")[0]']).toString().trim());
      if (major > 0 && major < 24) return candidate;
    } catch {
      // not runnable: try the next one
    }
  }
  return null;
}

test('global options may come before the verb: --home and --json apply as after it', async (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  const set = await runCli(['--json', '--home', home.dir, 'config', 'set', 'gateway.port', '18801'], {});
  assert.equal(set.code, 0, set.stderr);
  assert.deepEqual(JSON.parse(set.stdout), { path: 'gateway.port', value: 18801 }, 'config set --json prints one JSON document too');
  const get = await runCli([`--home=${home.dir}`, 'config', 'get', 'gateway.port', '--json'], {});
  assert.equal(JSON.parse(get.stdout), 18801, 'the --home given before the verb was the one written');
  const unset = await runCli(['--home', home.dir, 'config', 'unset', 'gateway.port', '--json'], {});
  assert.deepEqual(JSON.parse(unset.stdout), { path: 'gateway.port', unset: true });
  const secret = await runCli(['--home', home.dir, '--json', 'secrets', 'set', 'SOME_TOKEN'], { input: 'value-not-echoed' });
  assert.equal(secret.code, 0, secret.stderr);
  assert.deepEqual(JSON.parse(secret.stdout), { name: 'SOME_TOKEN', stored: true });
  assert.equal((await runCli(['--home', home.dir, 'nonsense'], {})).code, 2, 'an unknown verb is still a usage error');
});
