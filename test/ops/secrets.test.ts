import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempHome } from '../helpers/home.ts';
import { runCli } from '../helpers/cli.ts';
import { openSecrets } from '../../core/secrets/store.ts';
import { resolveCredential } from '../../core/secrets/source.ts';
import { ensureHome } from '../../core/home.ts';
import { TEST_SECRETS } from '../helpers/test-secrets.ts';

const VALUE = TEST_SECRETS.openaiKey;

function grepTree(dir: string, needle: string): string[] {
  const hits: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) hits.push(...grepTree(p, needle));
    else if (readFileSync(p).includes(needle)) hits.push(p);
  }
  return hits;
}

test('secrets set reads the value from stdin, stores it encrypted, and list shows only names', async (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  const set = await runCli(['secrets', 'set', 'OPENAI_API_KEY'], { home: home.dir, input: VALUE + '\n' });
  assert.equal(set.code, 0, set.stderr);
  assert.doesNotMatch(set.stdout + set.stderr, new RegExp(VALUE));
  const list = await runCli(['secrets', 'list', '--json'], { home: home.dir });
  assert.deepEqual(JSON.parse(list.stdout), { secrets: ['OPENAI_API_KEY'] });
  assert.deepEqual(grepTree(home.dir, VALUE), [], 'the value is nowhere in the state directory in clear');
  assert.equal(statSync(home.paths.secrets).mode & 0o777, 0o600);
  assert.equal(statSync(home.paths.secretsKey).mode & 0o777, 0o600);
  assert.equal(openSecrets(home.paths).get('OPENAI_API_KEY'), VALUE);
});

test('a secret value is never accepted on the command line', async (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  const res = await runCli(['secrets', 'set', 'X', VALUE], { home: home.dir });
  assert.equal(res.code, 2);
  assert.match(res.stderr, /read from stdin/);
});

test('with CARAPACE_PASSPHRASE the store opens only with the same passphrase', (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  ensureHome(home.paths);
  openSecrets(home.paths, { CARAPACE_PASSPHRASE: 'correct horse' }).set('TOKEN', VALUE);
  assert.equal(openSecrets(home.paths, { CARAPACE_PASSPHRASE: 'correct horse' }).get('TOKEN'), VALUE);
  assert.throws(() => openSecrets(home.paths, { CARAPACE_PASSPHRASE: 'wrong' }).get('TOKEN'), /wrong CARAPACE_PASSPHRASE/);
  assert.throws(() => openSecrets(home.paths, {}).get('TOKEN'), /set CARAPACE_PASSPHRASE/);
});

test('a tampered secrets file is refused, not misread', (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  ensureHome(home.paths);
  openSecrets(home.paths).set('A', VALUE);
  const sealed = JSON.parse(readFileSync(home.paths.secrets, 'utf8'));
  const box = Buffer.from(sealed.box, 'base64');
  box[box.length - 1] ^= 1;
  sealed.box = box.toString('base64');
  writeFileSync(home.paths.secrets, JSON.stringify(sealed));
  assert.throws(() => openSecrets(home.paths).get('A'), /cannot be opened/);
});

test('credentials in config resolve from the store or the environment, never from a literal', (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  ensureHome(home.paths);
  const store = openSecrets(home.paths);
  store.set('HOOK_CI', 'hook-secret-1');
  assert.equal(resolveCredential({ secret: 'HOOK_CI' }, store), 'hook-secret-1');
  assert.equal(resolveCredential('${MY_ENV}', store, { MY_ENV: 'from-env' }), 'from-env');
  assert.equal(resolveCredential('literal-value', store), undefined);
});

test('secrets set run many times at once, on a fresh home, keeps every secret under one key', async (t) => {
  const home = tempHome('secrets-race');
  t.after(home.cleanup);
  const names = ['S0', 'S1', 'S2', 'S3', 'S4', 'S5', 'S6', 'S7'];
  const runs = await Promise.all(names.map((n) => runCli(['secrets', 'set', n], { home: home.dir, input: `value-of-${n}` })));
  assert.deepEqual(runs.map((r) => r.code), names.map(() => 0), runs.map((r) => r.stderr).join('\n'));
  const store = openSecrets(home.paths, {});
  assert.deepEqual(store.names(), names);
  for (const n of names) assert.equal(store.get(n), `value-of-${n}`);
});
