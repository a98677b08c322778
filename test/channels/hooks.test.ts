import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { ensureHome } from '../../core/home.ts';
import { startGateway } from '../../core/gateway/gateway.ts';
import { createHooksService } from '../../core/channels/hooks.ts';
import type { Dispatch } from '../../core/channels/router.ts';
import { tempHome } from '../helpers/home.ts';

const SECRET = 'hook-secret-for-tests-0123456789';

async function gatewayWithHooks(t: TestContext, opts: { env?: NodeJS.ProcessEnv; failDispatch?: boolean } = {}) {
  const home = tempHome('hooks');
  ensureHome(home.paths);
  writeFileSync(home.paths.config, JSON.stringify({
    hooks: {
      ci: { secret: { secret: 'HOOK_CI' }, sessionKey: 'hook:ci', deliver: 'telegram:123456' },
      env: { secret: '${CARAPACE_TEST_HOOK}' },
      unset: { secret: { secret: 'NOT_SET_ANYWHERE' } },
    },
  }));
  const turns: Dispatch[] = [];
  const start = () =>
    startGateway({
      home: home.dir,
      port: 0,
      logStream: null,
      services: [
        (ctx) => createHooksService({
          config: () => ctx.config.current,
          db: ctx.db,
          clock: ctx.clock,
          log: ctx.log,
          audit: ctx.audit,
          secrets: { get: (name) => (name === 'HOOK_CI' ? SECRET : undefined) },
          env: opts.env ?? {},
          dispatch: (d) => {
            if (opts.failDispatch) throw new Error('agent down');
            turns.push(d);
          },
        }),
      ],
    });
  let gw = await start();
  t.after(async () => {
    await gw.stop();
    home.cleanup();
  });
  const post = (name: string, body: string, headers: Record<string, string>) =>
    fetch(`${gw.url}/hooks/${name}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  /** Stop the gateway and start a new one on the same home (what it remembers is on disk). */
  const restart = async () => {
    await gw.stop();
    gw = await start();
  };
  return { gw, turns, post, restart };
}

const sign = (body: string, secret = SECRET) => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
const signed = (body: string, at = Date.now()) => ({ 'x-carapace-signature': sign(body), 'x-carapace-timestamp': String(at) });

test('a hook with the right bearer secret starts a turn and answers 202 with a runId', async (t) => {
  const { turns, post } = await gatewayWithHooks(t);
  const res = await post('ci', JSON.stringify({ text: 'build failed on main' }), { authorization: `Bearer ${SECRET}` });
  assert.equal(res.status, 202);
  const { runId } = (await res.json()) as { runId: string };
  assert.match(runId, /^run_/);
  assert.equal(turns.length, 1);
  assert.deepEqual(
    { agentId: turns[0].agentId, sessionKey: turns[0].sessionKey, runId: turns[0].runId, text: turns[0].message.text, deliver: turns[0].deliver },
    { agentId: 'main', sessionKey: 'hook:ci', runId, text: 'build failed on main', deliver: 'telegram:123456' },
  );
});

test('a hook with a right, fresh signature starts a turn', async (t) => {
  const { turns, post } = await gatewayWithHooks(t);
  const body = JSON.stringify({ text: 'deploy done' });
  const res = await post('ci', body, signed(body));
  assert.equal(res.status, 202);
  assert.equal(turns.length, 1);
});

test('a wrong bearer secret or no auth at all is refused with 401 and starts nothing', async (t) => {
  const { turns, post } = await gatewayWithHooks(t);
  const body = JSON.stringify({ text: 'x' });
  const wrong = await post('ci', body, { authorization: `Bearer ${SECRET}x` });
  const none = await post('ci', body, {});
  assert.deepEqual([wrong.status, none.status], [401, 401]);
  assert.equal(((await none.json()) as { error: { details: { reason: string } } }).error.details.reason, 'missing');
  assert.equal(turns.length, 0);
});

test('a signature made with the wrong secret, or over another body, is refused', async (t) => {
  const { turns, post } = await gatewayWithHooks(t);
  const body = JSON.stringify({ text: 'rm -rf please' });
  const otherSecret = await post('ci', body, { 'x-carapace-signature': sign(body, 'guess'), 'x-carapace-timestamp': String(Date.now()) });
  const otherBody = await post('ci', body, { 'x-carapace-signature': sign('{"text":"hi"}'), 'x-carapace-timestamp': String(Date.now()) });
  const malformed = await post('ci', body, { 'x-carapace-signature': 'sha256=zz', 'x-carapace-timestamp': String(Date.now()) });
  assert.deepEqual([otherSecret.status, otherBody.status, malformed.status], [401, 401, 401]);
  assert.equal(((await otherSecret.json()) as { error: { details: { reason: string } } }).error.details.reason, 'signature');
  assert.equal(turns.length, 0);
});

test('a signed request replayed within the window is refused', async (t) => {
  const { turns, post } = await gatewayWithHooks(t);
  const body = JSON.stringify({ text: 'pay invoice 7' });
  const headers = signed(body);
  const first = await post('ci', body, headers);
  const replay = await post('ci', body, headers);
  assert.deepEqual([first.status, replay.status], [202, 401]);
  assert.equal(((await replay.json()) as { error: { details: { reason: string } } }).error.details.reason, 'replayed');
  assert.equal(turns.length, 1);
});

test('a signed request with a timestamp outside five minutes is refused as stale', async (t) => {
  const { turns, post } = await gatewayWithHooks(t);
  const body = JSON.stringify({ text: 'old news' });
  const old = await post('ci', body, signed(body, Date.now() - 6 * 60 * 1000));
  const garbled = await post('ci', body, { ...signed(body), 'x-carapace-timestamp': 'yesterday' });
  assert.deepEqual([old.status, garbled.status], [401, 401]);
  assert.equal(((await old.json()) as { error: { details: { reason: string } } }).error.details.reason, 'stale');
  assert.equal(turns.length, 0);
});

test('a request signed as config.md says (the signature header alone) starts a turn once; the same signed body again is a replay, also after a restart', async (t) => {
  const { turns, post, restart } = await gatewayWithHooks(t);
  const body = JSON.stringify({ text: 'deploy finished' });
  const first = await post('ci', body, { 'x-carapace-signature': sign(body) });
  assert.equal(first.status, 202);
  assert.match(((await first.json()) as { runId: string }).runId, /^run_/);
  await restart();
  const again = await post('ci', body, { 'x-carapace-signature': sign(body) });
  assert.equal(again.status, 401);
  assert.equal(((await again.json()) as { error: { details: { reason: string } } }).error.details.reason, 'replayed');
  const other = JSON.stringify({ text: 'deploy finished', id: 'deploy-2' });
  assert.equal((await post('ci', other, { 'x-carapace-signature': sign(other) })).status, 202, 'another body is another request');
  assert.equal(turns.length, 2);
});

test('a repeated id answers 200 with the first runId and starts no second turn', async (t) => {
  const { turns, post } = await gatewayWithHooks(t);
  const auth = { authorization: `Bearer ${SECRET}` };
  const first = await post('ci', JSON.stringify({ text: 'once', id: 'evt-1' }), auth);
  const again = await post('ci', JSON.stringify({ text: 'once', id: 'evt-1' }), auth);
  assert.deepEqual([first.status, again.status], [202, 200]);
  assert.equal(((await again.json()) as { runId: string }).runId, ((await first.json()) as { runId: string }).runId);
  assert.equal(turns.length, 1);
});

test('a hook secret from ${ENV} works, and a hook whose secret is unset refuses everything', async (t) => {
  const { turns, post } = await gatewayWithHooks(t, { env: { CARAPACE_TEST_HOOK: 'env-secret-value' } });
  const ok = await post('env', JSON.stringify({ text: 'hi' }), { authorization: 'Bearer env-secret-value' });
  const unset = await post('unset', JSON.stringify({ text: 'hi' }), { authorization: 'Bearer ' });
  assert.deepEqual([ok.status, unset.status], [202, 503]);
  assert.equal(turns.length, 1);
});

test('an unknown hook is 404, a bad body 400, an oversized body 413', async (t) => {
  const { turns, post } = await gatewayWithHooks(t);
  const auth = { authorization: `Bearer ${SECRET}` };
  const unknown = await post('nope', JSON.stringify({ text: 'x' }), auth);
  const bad = await post('ci', JSON.stringify({ txt: 'x' }), auth);
  const notJson = await post('ci', 'text=x', auth);
  const huge = await post('ci', JSON.stringify({ text: 'x'.repeat(70 * 1024) }), auth);
  assert.deepEqual([unknown.status, bad.status, notJson.status, huge.status], [404, 400, 400, 413]);
  assert.equal(turns.length, 0);
});

test('when the agent side is down the hook answers 503 and forgets the id, so a retry is attempted afresh', async (t) => {
  const { post } = await gatewayWithHooks(t, { failDispatch: true });
  const res = await post('ci', JSON.stringify({ text: 'x', id: 'evt-9' }), { authorization: `Bearer ${SECRET}` });
  assert.equal(res.status, 503);
  const again = await post('ci', JSON.stringify({ text: 'x', id: 'evt-9' }), { authorization: `Bearer ${SECRET}` });
  assert.equal(again.status, 503, 'not answered 200 with a runId that never ran');
});
