import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdirSync } from 'node:fs';
import Database from 'better-sqlite3';
import { tempHome } from '../helpers/home.ts';
import { spawnGateway } from '../helpers/gateway.ts';
import { runCli } from '../helpers/cli.ts';

test('a second start on the same home refuses with a clear message and leaves the first running', async (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  const gw = await spawnGateway(home.dir);
  t.after(() => gw.stop('SIGKILL'));

  const second = await runCli(['start', '--port', '0'], { home: home.dir });
  assert.equal(second.code, 1);
  assert.match(second.stderr, new RegExp(`another gateway \\(pid ${gw.child.pid}\\) is already running`));
  assert.equal(second.stderr.trim().split('\n').length, 1, 'one line on stderr');

  assert.equal((await fetch(`${gw.url}/healthz`)).status, 200, 'the first gateway still answers');
  assert.equal((await gw.stop()).code, 0);
  const db = new Database(home.paths.db, { readonly: true });
  t.after(() => db.close());
  assert.equal((db.pragma('integrity_check') as { integrity_check: string }[])[0].integrity_check, 'ok');
});

test('a lock left by a dead process is taken over', async (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  mkdirSync(home.paths.runDir, { recursive: true });
  // A pid that cannot be alive: beyond the kernel's pid_max.
  writeFileSync(home.paths.lock, '99999999\n');
  const gw = await spawnGateway(home.dir);
  t.after(() => gw.stop('SIGKILL'));
  assert.equal((await fetch(`${gw.url}/healthz`)).status, 200);
  assert.equal((await gw.stop()).code, 0);
});
