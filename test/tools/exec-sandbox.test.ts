import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import { execFileSync } from 'node:child_process';
import { createExecTool, type ExecConfig } from '../../plugins/tools/exec/index.ts';
import { probeSandbox } from '../../plugins/tools/exec/sandbox.ts';

const ctx = { agentId: 'main', sessionKey: 'test' };
let base: string;
let home: string;
let workspace: string;

before(() => {
  base = mkdtempSync(join(tmpdir(), 'carapace-exec-'));
  home = join(base, 'home');
  workspace = join(home, 'workspace');
  mkdirSync(workspace, { recursive: true });
  writeFileSync(join(home, 'secrets.key'), 'the-state-dir-secret-3f9a');
});
after(() => rmSync(base, { recursive: true, force: true }));

function tool(cfg: Partial<ExecConfig> = {}) {
  return createExecTool({ workspace, hide: [home], config: () => cfg });
}

const sandbox = await probeSandbox();
const skip = sandbox.ok ? false : `bubblewrap unavailable here: ${sandbox.reason}`;

test('exec writes inside the workspace', { skip }, async () => {
  const r = await tool().run({ argv: ['sh', '-c', 'echo hello > made-here.txt'] }, ctx);
  assert.equal(r.isError, false, r.content);
  assert.equal(readFileSync(join(workspace, 'made-here.txt'), 'utf8'), 'hello\n');
});

test('exec cannot write outside the workspace', { skip }, async () => {
  const sibling = join(base, 'outside.txt');
  const varTmp = `/var/tmp/carapace-exec-escape-${process.pid}`;
  const r = await tool().run({ argv: ['sh', '-c', `echo x > ${sibling}; echo x > ${varTmp}; echo x > /etc/carapace-escape; true`] }, ctx);
  assert.equal(existsSync(sibling), false);
  assert.equal(existsSync(varTmp), false);
  assert.equal(existsSync('/etc/carapace-escape'), false);
  assert.match(r.content, /Read-only file system|No such file|cannot create/);
});

test('exec cannot see the gateway environment or the state directory', { skip }, async () => {
  process.env.CARAPACE_TEST_TOKEN = 'env-secret-value-77c1';
  try {
    const r = await tool().run({ argv: ['sh', '-c', `env; cat ${join(home, 'secrets.key')}; cat /proc/${process.pid}/environ; true`] }, ctx);
    assert.doesNotMatch(r.content, /env-secret-value-77c1/);
    assert.doesNotMatch(r.content, /the-state-dir-secret-3f9a/);
    assert.match(r.content, /PATH=\/usr\/local\/bin/); // the fixed env is there: the command did run
  } finally {
    delete process.env.CARAPACE_TEST_TOKEN;
  }
});

function listen(): Promise<{ server: Server; port: number; hits: () => number }> {
  let hits = 0;
  const server = createServer((_req, res) => {
    hits++;
    res.end('reached');
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port, hits: () => hits })),
  );
}

test('exec cannot reach a loopback server without a network grant', { skip }, async () => {
  const { server, port, hits } = await listen();
  try {
    const r = await tool().run({ argv: ['curl', '-sS', '--max-time', '3', `http://127.0.0.1:${port}/`] }, ctx);
    assert.equal(hits(), 0);
    assert.doesNotMatch(r.content, /reached/);
    assert.equal(r.isError, true);
  } finally {
    server.close();
  }
});

test('exec reaches the network only when the user granted it', { skip }, async () => {
  const { server, port, hits } = await listen();
  try {
    const r = await tool({ network: true }).run({ argv: ['curl', '-sS', '--max-time', '5', `http://127.0.0.1:${port}/`] }, ctx);
    assert.match(r.content, /reached/);
    assert.equal(hits(), 1);
  } finally {
    server.close();
  }
});

test('exec is killed with its whole process tree at the time limit', { skip }, async () => {
  const marker = '987.654321';
  const r = await tool({ timeoutMs: 400 }).run({ argv: ['sh', '-c', `sleep ${marker} & sleep ${marker}`] }, ctx);
  assert.equal(r.isError, true);
  assert.equal((r.data as { timedOut: boolean }).timedOut, true);
  assert.match(r.content, /time limit/);
  let left = '';
  try {
    left = execFileSync('pgrep', ['-f', `sleep ${marker}`], { encoding: 'utf8' });
  } catch {
    /* pgrep exits 1 when nothing matches */
  }
  assert.equal(left.trim(), '', 'no sandboxed process may outlive the time limit');
});

test('the model cannot raise the time limit above the configured one', { skip }, async () => {
  const r = await tool({ timeoutMs: 300 }).run({ argv: ['sleep', '5'], timeoutMs: 60_000 }, ctx);
  assert.equal((r.data as { timedOut: boolean }).timedOut, true);
});

test('exec output is capped', { skip }, async () => {
  const r = await tool({ maxOutputBytes: 1000 }).run({ argv: ['head', '-c', '200000', '/dev/zero'] }, ctx);
  const d = r.data as { stdout: string; truncated: boolean };
  assert.equal(d.truncated, true);
  assert.equal(d.stdout.length, 1000);
});

test('exec runs in a fresh PID namespace', { skip }, async () => {
  const r = await tool().run({ argv: ['sh', '-c', `test -e /proc/${process.pid} && echo VISIBLE || echo hidden`] }, ctx);
  assert.match(r.content, /hidden/);
});

test('exec is disabled with a clear message when bubblewrap cannot sandbox', async () => {
  const t = createExecTool({ workspace, hide: [home], config: () => ({}), bwrap: '/bin/false' });
  const r = await t.run({ argv: ['touch', 'should-not-exist'] }, ctx);
  assert.equal(r.isError, true);
  assert.match(r.content, /exec is disabled: bubblewrap cannot create its sandbox/);
  assert.equal(existsSync(join(workspace, 'should-not-exist')), false);
});
