// A stop answers the requests in flight, then closes what is left (core/gateway/drain.ts).
// That a quiet connection no longer holds the stop is shown through a real SIGTERM in
// start.test.ts: in process, Node cuts it after 30 s, so only the time would differ.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { once } from 'node:events';
import Database from 'better-sqlite3';
import { tempHome } from '../helpers/home.ts';
import { startGateway } from '../../core/gateway/gateway.ts';
import type { Service } from '../../core/kernel.ts';

test('a stop lets a request in flight finish, closes a connection that never sent one, and completes', async (t) => {
  const home = tempHome('drain');
  t.after(home.cleanup);
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let arrived!: () => void;
  const slowArrived = new Promise<void>((r) => (arrived = r));
  const slow = (): Service => ({
    name: 'slow',
    routes(app) {
      app.get('/slow', async () => {
        arrived();
        await released;
        return { done: true };
      });
    },
  });
  const gw = await startGateway({ home: home.dir, port: 0, logStream: null, services: [slow] });
  const quiet = connect(gw.port, '127.0.0.1');
  await once(quiet, 'connect');
  const quietClosed = once(quiet, 'close');
  const response = fetch(`${gw.url}/slow`);
  await slowArrived;

  let stopped = false;
  const stopping = gw.stop().then(() => (stopped = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(stopped, false, 'the stop waits for the request in flight');
  release();
  const res = await response;
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { done: true });
  await stopping;
  await quietClosed;
  const db = new Database(home.paths.db, { readonly: true });
  t.after(() => db.close());
  assert.equal((db.prepare("SELECT count(*) AS n FROM audit WHERE action = 'gateway.stop'").get() as { n: number }).n, 1, 'the clean-up ran');
});
