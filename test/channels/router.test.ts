import { test } from 'node:test';
import assert from 'node:assert/strict';
import { routerRig, dm, groupMsg } from '../helpers/channels.ts';
import { CarapaceError } from '../../core/errors.ts';

const HOUR = 60 * 60 * 1000;
const telegram = (settings: Record<string, unknown>) => ({ channels: { telegram: settings } });

test('an unknown sender under dmPolicy pairing gets a code once and nothing reaches the agent', async (t) => {
  const rig = routerRig(t, telegram({ dmPolicy: 'pairing' }));
  const first = await rig.router.receive(dm('telegram', '1001', 'hi'));
  const second = await rig.router.receive(dm('telegram', '1001', 'hello??'));
  assert.deepEqual([first.outcome, second.outcome], ['pairing', 'pairing']);
  assert.equal(rig.replies.length, 1, 'one code, not one per message');
  const code = rig.pairing.list('telegram')[0].code;
  assert.match(rig.replies[0].text, new RegExp(code));
  assert.equal(rig.pairingEvents.length, 1);
  assert.equal(rig.dispatched.length, 0);
});

test('after the owner approves a pairing code the sender reaches the agent', async (t) => {
  const rig = routerRig(t, telegram({ dmPolicy: 'pairing' }));
  await rig.router.receive(dm('telegram', '1001'));
  const code = rig.pairing.list('telegram')[0].code;
  rig.pairing.approve('telegram', code.toLowerCase().replace('-', ''), 'owner');
  const res = await rig.router.receive(dm('telegram', '1001', 'now?'));
  assert.equal(res.outcome, 'dispatched');
  assert.equal(rig.dispatched[0].message.text, 'now?');
  assert.equal(rig.dispatched[0].sessionKey, 'agent:main:telegram:dm:1001');
  assert.equal(rig.audit.list({ action: 'pairing.approve' }).length, 1);
});

test('a pairing code expires after an hour and the sender then gets a new one', async (t) => {
  const rig = routerRig(t, telegram({ dmPolicy: 'pairing' }));
  await rig.router.receive(dm('telegram', '1001'));
  const old = rig.pairing.list('telegram')[0].code;
  rig.clock.advance(HOUR + 1);
  assert.throws(() => rig.pairing.approve('telegram', old, 'owner'), (e: CarapaceError) => e.code === 'NOT_FOUND');
  await rig.router.receive(dm('telegram', '1001'));
  assert.equal(rig.replies.length, 2);
  assert.notEqual(rig.pairing.list('telegram')[0].code, old);
});

test('at most three pairing requests are pending per channel', async (t) => {
  const rig = routerRig(t, telegram({ dmPolicy: 'pairing' }));
  for (const s of ['1', '2', '3']) await rig.router.receive(dm('telegram', s));
  const fourth = await rig.router.receive(dm('telegram', '4'));
  assert.deepEqual(fourth, { outcome: 'pairing', inboundId: fourth.inboundId, reason: 'pending-full' });
  assert.equal(rig.replies.length, 3);
  assert.equal(rig.pairing.list('telegram').length, 3);
});

test('a rejected sender gets no new code within the hour', async (t) => {
  const rig = routerRig(t, telegram({ dmPolicy: 'pairing' }));
  await rig.router.receive(dm('telegram', '1001'));
  rig.pairing.reject('telegram', rig.pairing.list('telegram')[0].code, 'owner');
  await rig.router.receive(dm('telegram', '1001'));
  assert.equal(rig.replies.length, 1);
  assert.equal(rig.dispatched.length, 0);
});

test('dmPolicy allowlist admits listed sender ids only, and sends strangers nothing', async (t) => {
  const rig = routerRig(t, telegram({ dmPolicy: 'allowlist', allowFrom: ['1001'] }));
  assert.equal((await rig.router.receive(dm('telegram', '1001'))).outcome, 'dispatched');
  const stranger = await rig.router.receive(dm('telegram', '2002', 'hi', { sender: { id: '2002', username: '1001' } }));
  assert.deepEqual(stranger, { outcome: 'refused', inboundId: stranger.inboundId, reason: 'not-allowlisted' });
  assert.equal(rig.dispatched.length, 1);
  assert.equal(rig.replies.length, 0);
});

test('dmPolicy disabled refuses every direct message, even from allowFrom', async (t) => {
  const rig = routerRig(t, telegram({ dmPolicy: 'disabled', allowFrom: ['1001'] }));
  const res = await rig.router.receive(dm('telegram', '1001'));
  assert.equal(res.outcome === 'refused' && res.reason, 'dm-disabled');
  assert.equal(rig.dispatched.length, 0);
});

test('dmPolicy open admits anyone', async (t) => {
  const rig = routerRig(t, telegram({ dmPolicy: 'open' }));
  assert.equal((await rig.router.receive(dm('telegram', '9999'))).outcome, 'dispatched');
});

test('a disabled channel refuses everything', async (t) => {
  const rig = routerRig(t, telegram({ enabled: false, dmPolicy: 'open' }));
  const res = await rig.router.receive(dm('telegram', '1'));
  assert.equal(res.outcome === 'refused' && res.reason, 'channel-disabled');
});

test('in a listed group only messages that mention the bot reach the agent', async (t) => {
  const rig = routerRig(t, telegram({ groups: { '-100': {} } }));
  const quiet = await rig.router.receive(groupMsg('telegram', '-100', '7', 'chatting among ourselves'));
  const asked = await rig.router.receive(groupMsg('telegram', '-100', '7', '@bot what time is it', { mentioned: true }));
  assert.equal(quiet.outcome === 'refused' && quiet.reason, 'mention-required');
  assert.equal(asked.outcome, 'dispatched');
  assert.equal(rig.dispatched[0].sessionKey, 'agent:main:telegram:group:-100');
});

test('a group with requireMention false hears every message', async (t) => {
  const rig = routerRig(t, telegram({ requireMention: true, groups: { '-100': { requireMention: false } } }));
  assert.equal((await rig.router.receive(groupMsg('telegram', '-100', '7', 'hi all'))).outcome, 'dispatched');
});

test('a group not listed under groupPolicy allowlist is refused even with a mention', async (t) => {
  const rig = routerRig(t, telegram({ groups: { '-100': {} } }));
  const res = await rig.router.receive(groupMsg('telegram', '-200', '7', '@bot hi', { mentioned: true }));
  assert.equal(res.outcome === 'refused' && res.reason, 'group-not-allowlisted');
});

test('a per-group allowFrom limits who in the group may address the agent', async (t) => {
  const rig = routerRig(t, telegram({ groups: { '-100': { allowFrom: ['7'] } } }));
  const other = await rig.router.receive(groupMsg('telegram', '-100', '8', '@bot hi', { mentioned: true }));
  assert.equal(other.outcome === 'refused' && other.reason, 'sender-not-allowed-in-group');
});

test('groupPolicy disabled refuses group messages', async (t) => {
  const rig = routerRig(t, telegram({ groupPolicy: 'disabled', groups: { '-100': {} } }));
  const res = await rig.router.receive(groupMsg('telegram', '-100', '7', '@bot', { mentioned: true }));
  assert.equal(res.outcome === 'refused' && res.reason, 'groups-disabled');
});

test('a redelivered platform message id is dispatched once', async (t) => {
  const rig = routerRig(t, telegram({ dmPolicy: 'open' }));
  const msg = dm('telegram', '1001', 'once');
  const results = [await rig.router.receive(msg), await rig.router.receive(structuredClone(msg)), await rig.router.receive({ ...msg, text: 'edited' })];
  assert.deepEqual(results.map((r) => r.outcome), ['dispatched', 'duplicate', 'duplicate']);
  assert.equal(rig.dispatched.length, 1);
});

test('the same platform id on another account is a different message', async (t) => {
  const rig = routerRig(t, telegram({ dmPolicy: 'open' }));
  const msg = dm('telegram', '1001', 'x', { account: 'a' });
  await rig.router.receive(msg);
  assert.equal((await rig.router.receive({ ...msg, account: 'b' })).outcome, 'dispatched');
});

test('the most specific binding picks the agent', async (t) => {
  const rig = routerRig(t, {
    agents: { list: [{ id: 'main' }, { id: 'work' }, { id: 'family' }] },
    bindings: [
      { agentId: 'main', match: { channel: '*' } },
      { agentId: 'work', match: { channel: 'telegram' } },
      { agentId: 'family', match: { channel: 'telegram', peer: '1001' } },
    ],
    channels: { telegram: { dmPolicy: 'open' }, irc: { dmPolicy: 'open' } },
  });
  await rig.router.receive(dm('telegram', '1001'));
  await rig.router.receive(dm('telegram', '2002'));
  await rig.router.receive(dm('irc', 'bob'));
  assert.deepEqual(rig.dispatched.map((d) => d.agentId), ['family', 'work', 'main']);
  assert.equal(rig.dispatched[0].sessionKey, 'agent:family:telegram:dm:1001');
});

test('session.dmScope main puts every DM in one session', async (t) => {
  const rig = routerRig(t, { session: { dmScope: 'main' }, channels: { telegram: { dmPolicy: 'open' } } });
  await rig.router.receive(dm('telegram', '1'));
  await rig.router.receive(dm('telegram', '2'));
  assert.deepEqual(rig.dispatched.map((d) => d.sessionKey), ['agent:main:main', 'agent:main:main']);
});

test('a plugin cannot publish inbound messages for another channel', async (t) => {
  const rig = routerRig(t, telegram({ dmPolicy: 'open' }));
  await assert.rejects(rig.router.receive(dm('telegram', '1'), 'plugin:evil'), (e: CarapaceError) => e.code === 'FORBIDDEN');
  assert.equal(rig.dispatched.length, 0);
});

test('a malformed envelope is refused before anything is stored', async (t) => {
  const rig = routerRig(t, telegram({ dmPolicy: 'open' }));
  await assert.rejects(rig.router.receive({ channel: 'telegram', text: 'x' }), (e: CarapaceError) => e.code === 'INVALID_REQUEST');
  assert.deepEqual(rig.inbox.counts(), {});
});

test('a message accepted while the agent side is down is dispatched on recovery, once', async (t) => {
  const rig = routerRig(t, telegram({ dmPolicy: 'open' }));
  rig.failDispatch(true);
  const res = await rig.router.receive(dm('telegram', '1', 'are you there'));
  assert.equal(res.outcome, 'queued');
  rig.failDispatch(false);
  assert.equal(await rig.router.recover(), 1);
  assert.equal(await rig.router.recover(), 0);
  assert.equal(rig.dispatched.length, 1);
  assert.equal(rig.dispatched[0].message.text, 'are you there');
});

test("a stranger's refused message text is not kept", async (t) => {
  const rig = routerRig(t, telegram({ dmPolicy: 'allowlist' }));
  await rig.router.receive(dm('telegram', '666', 'my secret words'));
  const row = rig.db.prepare('SELECT envelope, reason FROM channel_inbound').get() as { envelope: string | null; reason: string };
  assert.deepEqual(row, { envelope: null, reason: 'not-allowlisted' });
});
