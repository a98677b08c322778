import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkCommand, parseCommandString, CommandRefused, type AllowEntry } from '../../plugins/tools/exec/command.ts';
import { createExecTool } from '../../plugins/tools/exec/index.ts';
import { probeSandbox } from '../../plugins/tools/exec/sandbox.ts';

const allow: AllowEntry[] = [['ls', '...'], ['echo', '...'], ['cat', 'README.md'], ['env'], ['git', 'status']];

function refusedFor(input: { argv?: unknown; command?: unknown }): string {
  try {
    checkCommand(input, allow);
  } catch (err) {
    assert.ok(err instanceof CommandRefused, String(err));
    return err.reason;
  }
  assert.fail(`${JSON.stringify(input)} was allowed`);
}

test('an allowlisted argv is allowed and resolved to the real program file', () => {
  const c = checkCommand({ argv: ['ls', '-la'] }, allow);
  assert.match(c.argv[0], /^\/.*\/ls$/);
  assert.deepEqual(c.argv.slice(1), ['-la']);
});

test('an absolute normal path to an allowlisted program is allowed', () => {
  assert.equal(checkCommand({ argv: ['/bin/ls'] }, allow).argv[0], checkCommand({ argv: ['ls'] }, allow).argv[0]);
});

test('a plain command string is split into argv', () => {
  assert.deepEqual(parseCommandString(`echo 'hello world' "again" x`), ['echo', 'hello world', 'again', 'x']);
  assert.deepEqual(checkCommand({ command: 'cat README.md' }, allow).argv.slice(1), ['README.md']);
});

test('env -S is refused even though env is allowlisted', () => {
  assert.equal(refusedFor({ argv: ['env', '-S', 'rm -rf /'] }), 'launcher');
  assert.equal(refusedFor({ argv: ['env'] }), 'launcher');
  assert.equal(refusedFor({ command: 'env -S ls' }), 'launcher');
});

test('command substitution $(...) in a string command is refused', () => {
  assert.equal(refusedFor({ command: 'echo $(rm -rf ~)' }), 'shell-metacharacter');
  assert.equal(refusedFor({ command: 'echo "$(id)"' }), 'shell-metacharacter');
  assert.equal(refusedFor({ command: 'echo ${HOME}' }), 'shell-metacharacter');
});

test('backticks in a string command are refused', () => {
  assert.equal(refusedFor({ command: 'echo `id`' }), 'shell-metacharacter');
});

test('; and && and || and pipes chaining a second command are refused', () => {
  assert.equal(refusedFor({ command: 'ls; rm -rf /' }), 'shell-metacharacter');
  assert.equal(refusedFor({ command: 'ls && rm -rf /' }), 'shell-metacharacter');
  assert.equal(refusedFor({ command: 'ls || rm -rf /' }), 'shell-metacharacter');
  assert.equal(refusedFor({ command: 'ls | sh' }), 'shell-metacharacter');
  assert.equal(refusedFor({ command: 'ls\nrm -rf /' }), 'shell-metacharacter');
  assert.equal(refusedFor({ command: 'echo x > /etc/passwd' }), 'shell-metacharacter');
});

test('globs in a string command are refused', () => {
  assert.equal(refusedFor({ command: 'cat READ*' }), 'shell-metacharacter');
  assert.equal(refusedFor({ command: 'cat READM?.md' }), 'shell-metacharacter');
  assert.equal(refusedFor({ command: 'cat [R]EADME.md' }), 'shell-metacharacter');
  assert.equal(refusedFor({ command: 'ls ~' }), 'shell-metacharacter');
});

test('shell syntax inside argv stays one literal argument and cannot widen a fixed entry', () => {
  assert.equal(refusedFor({ argv: ['git', 'status;rm'] }), 'not-allowlisted');
  assert.equal(refusedFor({ argv: ['git', 'status', '&&', 'rm', '-rf', '/'] }), 'not-allowlisted');
  assert.equal(refusedFor({ argv: ['cat', 'READ*'] }), 'not-allowlisted');
  assert.equal(refusedFor({ argv: ['cat', 'README.md', '/etc/shadow'] }), 'not-allowlisted');
});

test('path tricks naming a program are refused', () => {
  assert.equal(refusedFor({ argv: ['/usr/bin/../bin/rm', '-rf', '/'] }), 'path-not-normal');
  assert.equal(refusedFor({ argv: ['/usr/bin/./ls'] }), 'path-not-normal');
  assert.equal(refusedFor({ argv: ['//usr/bin/ls'] }), 'path-not-normal');
  assert.equal(refusedFor({ argv: ['./ls'] }), 'relative-path');
  assert.equal(refusedFor({ argv: ['bin/ls'] }), 'relative-path');
  assert.equal(refusedFor({ command: './ls' }), 'relative-path');
});

test('a program not on the allowlist is refused by its resolved file, whatever it is called', () => {
  assert.equal(refusedFor({ argv: ['rm', '-rf', '/'] }), 'not-allowlisted');
  assert.equal(refusedFor({ argv: ['/usr/bin/rm'] }), 'not-allowlisted');
  assert.equal(refusedFor({ argv: ['sh', '-c', 'ls'] }), 'launcher');
  assert.equal(refusedFor({ argv: ['no-such-program-xyz'] }), 'not-found');
});

const sandbox = await probeSandbox();
test('a refused command never starts', { skip: sandbox.ok ? false : `bubblewrap unavailable: ${sandbox.reason}` }, async () => {
  const ws = mkdtempSync(join(tmpdir(), 'carapace-allow-'));
  try {
    const t = createExecTool({ workspace: ws, hide: [], config: () => ({ allow }) });
    const r = await t.run({ command: 'ls; touch pwned' }, { agentId: 'main', sessionKey: 's' });
    assert.equal(r.isError, true);
    assert.match(r.content, /shell metacharacter ";"/);
    const r2 = await t.run({ argv: ['touch', 'pwned'] }, { agentId: 'main', sessionKey: 's' });
    assert.match(r2.content, /matches no entry of the exec allowlist/);
    assert.equal(existsSync(join(ws, 'pwned')), false);
  } finally {
    rmSync(ws, { recursive: true, force: true });
  }
});
