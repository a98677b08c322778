import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { addIdleCollector, noteWork, startMemoryReducer } from '../../core/gateway/memory-reducer.ts';

// No polling while waiting: a poll is event-loop work, and the reducer would see it.
// Long enough that a loaded machine's timer jitter stays under the 1% idle mark.
const WINDOW = 150;

function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

function reducerWithCounter(t: import('node:test').TestContext, extra?: () => void) {
  let collected = 0;
  let wake: (() => void) | null = null;
  const removeExtra = extra ? addIdleCollector(extra) : () => {};
  const remove = addIdleCollector(() => {
    collected++;
    wake?.();
  });
  const reducer = startMemoryReducer({ windowMs: WINDOW });
  t.after(() => {
    reducer.stop();
    remove();
    removeExtra();
  });
  const next = (what: string) =>
    Promise.race([new Promise<void>((r) => (wake = r)), delay(10_000, undefined, { ref: false }).then(() => Promise.reject(new Error(`no collection: ${what}`)))]);
  return { count: () => collected, next };
}

test('after work, the first idle window collects once, in every registered collector; idleness alone does not collect again', async (t) => {
  const r = reducerWithCounter(t);
  await r.next('after start-up');
  await delay(WINDOW * 5);
  assert.equal(r.count(), 1, 'no work, no further collection');
  const after = r.next('after the burst of work');
  busy(WINDOW * 2);
  await after;
  assert.equal(r.count(), 2);
});

test('work finished in a plugin thread counts as work: no collection while plugin calls keep finishing', async (t) => {
  const r = reducerWithCounter(t);
  await r.next('after start-up');
  const calls = setInterval(noteWork, WINDOW / 2); // two cheap wakeups a window: idle by the event loop alone
  t.after(() => clearInterval(calls));
  await delay(WINDOW * 6);
  assert.equal(r.count(), 1);
  const after = r.next('once the plugin work stopped');
  clearInterval(calls);
  await after;
  assert.equal(r.count(), 2);
});

test('a collector that throws does not stop the others or the reducer', async (t) => {
  const r = reducerWithCounter(t, () => {
    throw new Error('the sandbox host went away');
  });
  await r.next('despite the throwing collector');
  assert.equal(r.count(), 1);
});
