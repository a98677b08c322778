import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHeartbeat, isHeartbeatAck, checklistIsEmpty, HEARTBEAT_OK, type HeartbeatDeps } from '../../core/scheduler/heartbeat.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

function setup(reply: string, checklist: string | null = '- check the build\n- any new mail from the bank?', extra: Partial<HeartbeatDeps> = {}) {
  const clock = new FakeClock();
  const turns: { sessionKey: string; message: string }[] = [];
  const delivered: { target: string; text: string }[] = [];
  const hb = createHeartbeat({
    timers: clock,
    readChecklist: () => checklist,
    settings: () => ({ everyMinutes: 30, deliver: 'telegram:42' }),
    runTurn: async (r) => (turns.push(r), { text: reply }),
    deliver: async (target, text) => void delivered.push({ target, text }),
    ...extra,
  });
  return { clock, hb, turns, delivered };
}

test('a heartbeat with nothing to do delivers nothing', async () => {
  const { clock, hb, turns, delivered } = setup(HEARTBEAT_OK);
  hb.start();
  await clock.advance(30 * 60_000);
  assert.equal(turns.length, 1);
  assert.match(turns[0].message, /check the build/);
  assert.match(turns[0].message, /HEARTBEAT_OK/);
  assert.deepEqual(delivered, []);
  await hb.stop();
});

test('a heartbeat with something to report delivers it', async () => {
  const { clock, hb, delivered } = setup('The build is red since 09:12: test/bus fails.');
  hb.start();
  await clock.advance(30 * 60_000);
  assert.deepEqual(delivered, [{ target: 'telegram:42', text: 'The build is red since 09:12: test/bus fails.' }]);
  await hb.stop();
});

test('heartbeats repeat every configured interval and not before', async () => {
  const { clock, hb, turns } = setup(HEARTBEAT_OK, undefined, { settings: () => ({ everyMinutes: 10 }) });
  hb.start();
  await clock.advance(10 * 60_000 - 1);
  assert.equal(turns.length, 0);
  await clock.advance(1 + 20 * 60_000);
  assert.equal(turns.length, 3);
  await hb.stop();
});

test('an empty or missing HEARTBEAT.md skips the turn', async () => {
  for (const checklist of [null, '', '# Heartbeat\n\n<!-- add items -->\n- [ ]\n']) {
    const { hb, turns } = setup('anything', checklist);
    assert.deepEqual(await hb.beat(), { ran: false, reason: 'empty-checklist' });
    assert.equal(turns.length, 0);
  }
});

test('the acknowledgement token is recognised with short surrounding text but not inside a real report', () => {
  assert.equal(isHeartbeatAck('HEARTBEAT_OK'), true);
  assert.equal(isHeartbeatAck('  **HEARTBEAT_OK**  '), true);
  assert.equal(isHeartbeatAck('All quiet. HEARTBEAT_OK'), true);
  assert.equal(isHeartbeatAck(''), true);
  assert.equal(isHeartbeatAck('Your flight moved to 07:40.'), false);
  assert.equal(isHeartbeatAck('HEARTBEAT_OK ' + 'but '.repeat(100)), false);
  assert.equal(isHeartbeatAck('I checked HEARTBEAT_OK items and the server is down'), false);
  assert.equal(checklistIsEmpty('- water the plants'), false);
});

test('a failing heartbeat turn delivers nothing and the next one still runs', async () => {
  let n = 0;
  const { clock, hb, delivered } = setup('', undefined, {
    runTurn: async () => {
      if (n++ === 0) throw new Error('provider down');
      return { text: 'Disk is 95% full.' };
    },
  });
  hb.start();
  await clock.advance(30 * 60_000);
  assert.deepEqual(delivered, []);
  await clock.advance(30 * 60_000);
  assert.equal(delivered.length, 1);
  await hb.stop();
});
