import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startBus } from '../helpers/bus.ts';

test('the owner connects, gets a verified hello, and health answers', async (t) => {
  const env = await startBus();
  t.after(() => env.stop());
  const c = await env.ownerClient();
  assert.equal(c.hello?.gateway.publicKey, env.pin.publicKey);
  const h = await c.request<{ ok: boolean; version: string }>('health');
  assert.equal(h.ok, true);
  const s = await c.request<Record<string, any>>('status');
  assert.equal(s.gateway.id, env.pin.id);
  assert.equal(s.bus.authenticated, 1);
});
