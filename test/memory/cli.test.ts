import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.ts';
import { tempHome } from '../helpers/home.ts';

test('carapace memory index, status and search work offline on the home\'s workspace', async (t) => {
  const home = tempHome('memory');
  t.after(home.cleanup);
  mkdirSync(join(home.paths.workspace, 'memory'), { recursive: true });
  writeFileSync(join(home.paths.workspace, 'MEMORY.md'), '# Memory\n\n## Car\n\nThe car is a blue 2019 Skoda Octavia, plate AB-123-CD.\n');
  writeFileSync(join(home.paths.workspace, 'memory', '2025-01-02.md'), '# 2025-01-02\n\nBooked the winter tyres change at the garage.\n');

  const before = await runCli(['memory', 'status', '--json'], { home: home.dir });
  assert.equal(before.code, 0, before.stderr);
  assert.equal(JSON.parse(before.stdout).state, 'none');

  const idx = await runCli(['memory', 'index', '--json'], { home: home.dir });
  assert.equal(idx.code, 0, idx.stderr);
  const report = JSON.parse(idx.stdout);
  assert.equal(report.docs.added, 2);
  assert.match(report.status.dbPath, /plugins\/hybrid\/data\/index\.sqlite$/);

  const status = JSON.parse((await runCli(['memory', 'status', '--json'], { home: home.dir })).stdout);
  assert.equal(status.state, 'complete');
  assert.equal(status.embedder.lexical, true);

  const search = await runCli(['memory', 'search', 'which', 'car', 'do', 'I', 'drive', '--json'], { home: home.dir });
  assert.equal(search.code, 0, search.stderr);
  const top = JSON.parse(search.stdout).hits[0];
  assert.deepEqual([top.path, top.startLine, top.endLine], ['MEMORY.md', 1, 5]);

  const human = await runCli(['memory', 'search', 'tyres'], { home: home.dir });
  assert.match(human.stdout, /^memory\/2025-01-02\.md:1-3 {2}score /m);
});

test('carapace memory with a bad subcommand or -k is a usage error', async () => {
  assert.equal((await runCli(['memory', 'explode'])).code, 2);
  assert.equal((await runCli(['memory', 'search', 'x', '-k', 'many'])).code, 2);
  assert.equal((await runCli(['memory', 'search'])).code, 2);
});
