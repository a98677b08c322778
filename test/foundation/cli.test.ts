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
  const bind = await runCli(['start', '--bind', 'everywhere'], { home: home.dir });
  assert.equal(bind.code, 2);
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
