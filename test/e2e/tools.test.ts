import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { tempHome } from '../helpers/home.ts';
import { spawnGateway } from '../helpers/gateway.ts';
import { connectOwner } from '../../core/cli/connect.ts';

// tools.invoke runs a tool through the same plugin host, policy and audit as an
// agent's call: here the memory plugin in its worker sandbox and the clock plugin
// in its isolate, driven over the paired bus as the owner device.

test('memory_write then memory_search through the gateway find the fact with its provenance', async (t) => {
  const home = tempHome('tools');
  t.after(home.cleanup);
  const gw = await spawnGateway(home.dir);
  t.after(() => gw.stop('SIGKILL'));
  const client = (await connectOwner(home.paths))!;
  t.after(() => client.close());

  const wrote = await client.request<{ content: string; isError?: boolean }>('tools.invoke', {
    tool: 'memory_write',
    input: { target: 'daily', text: 'The garage door code is changed every spring by Priya.' },
    idempotencyKey: randomUUID(),
  });
  assert.notEqual(wrote.isError, true, wrote.content);

  const found = await client.request<{ content: string; isError?: boolean }>('tools.invoke', {
    tool: 'memory_search',
    input: { query: 'who changes the garage door code' },
  });
  assert.notEqual(found.isError, true, found.content);
  assert.match(found.content, /Priya/);
  assert.match(found.content, /memory\/\d{4}-\d{2}-\d{2}\.md:\d+/, 'snippets carry file:line provenance');

  const tools = await client.request<{ tools: { name: string; plugin: string; allowed: boolean; requiresApproval: boolean }[] }>('tools.list', {});
  const byName = new Map(tools.tools.map((x) => [x.name, x]));
  assert.equal(byName.get('memory_search')?.plugin, 'hybrid');
  assert.equal(byName.get('clock_now')?.plugin, 'clock');
  assert.equal(byName.get('exec')?.plugin, 'kernel');
  assert.equal(byName.get('exec')?.requiresApproval, true, 'exec needs the owner by default');
  assert.equal(byName.get('files_write')?.requiresApproval, true, 'files.write in config matches the files_write tool');
  assert.equal((await gw.stop()).code, 0);
});

test('every tools.invoke is in the audit log with its outcome', async (t) => {
  const home = tempHome('tools');
  t.after(home.cleanup);
  const gw = await spawnGateway(home.dir);
  t.after(() => gw.stop('SIGKILL'));
  const client = (await connectOwner(home.paths))!;
  t.after(() => client.close());
  const r = await client.request<{ content: string }>('tools.invoke', { tool: 'clock_now', input: { timezone: 'Asia/Tokyo' } });
  assert.match(r.content, /Asia\/Tokyo/);
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(home.paths.db, { readonly: true });
  t.after(() => db.close());
  const row = db.prepare("SELECT actor, target, data FROM audit WHERE action = 'tool.call'").get() as { actor: string; target: string; data: string };
  assert.equal(row.target, 'clock_now');
  assert.deepEqual(JSON.parse(row.data).input, { timezone: 'Asia/Tokyo' });
  assert.equal(JSON.parse(row.data).ok, true);
});
