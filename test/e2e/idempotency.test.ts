import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tempHome } from '../helpers/home.ts';
import { spawnGateway } from '../helpers/gateway.ts';
import { connectOwner } from '../../core/cli/connect.ts';
import type { CarapaceError } from '../../core/errors.ts';

// protocol.md: "Side-effecting methods take idempotencyKey; a repeat returns the first
// result", and chat.send's and bus.publish's params list it as required. Those two
// refuse a call without one; every other method runs such a call, and runs a keyed
// call once.

test('chat.send and bus.publish need an idempotencyKey; other side-effecting methods take one and run a keyed call once', async (t) => {
  const home = tempHome('idem');
  t.after(home.cleanup);
  const gw = await spawnGateway(home.dir);
  t.after(() => gw.stop('SIGKILL'));
  const c = (await connectOwner(home.paths))!;
  t.after(() => c.close());
  const refusal = (p: Promise<unknown>) => p.then(() => assert.fail('accepted'), (e: CarapaceError) => [e.code, e.details?.pointer]);

  assert.deepEqual(await refusal(c.request('chat.send', { text: 'hi' })), ['INVALID_REQUEST', '/params/idempotencyKey']);
  assert.deepEqual(await refusal(c.request('bus.publish', { topic: 'device.x', payload: 1 })), ['INVALID_REQUEST', '/params/idempotencyKey']);

  const unkeyed = await c.request<{ job: { id: string } }>('cron.add', { every: '1h', message: 'ping' });
  const first = await c.request<{ job: { id: string } }>('cron.add', { every: '2h', message: 'pong', idempotencyKey: 'add-once' });
  const again = await c.request<{ job: { id: string } }>('cron.add', { every: '2h', message: 'pong', idempotencyKey: 'add-once' });
  assert.equal(again.job.id, first.job.id, 'the repeat returns the first result');
  const { jobs } = await c.request<{ jobs: { id: string }[] }>('cron.list', {});
  assert.deepEqual(jobs.map((j) => j.id).sort(), [unkeyed.job.id, first.job.id].sort(), 'two jobs: the keyed call ran once');
  await c.request('cron.remove', { id: unkeyed.job.id });
  await c.request('sessions.reset', { sessionKey: 'agent:main:main' });
});
