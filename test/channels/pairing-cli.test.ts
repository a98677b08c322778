import { test } from 'node:test';
import assert from 'node:assert/strict';
import { routerRig, dm } from '../helpers/channels.ts';
import { runCli } from '../helpers/cli.ts';

test('pairing end to end: an unknown sender gets one code, the owner approves it with the CLI, then the agent hears them', async (t) => {
  const rig = routerRig(t, { channels: { telegram: { dmPolicy: 'pairing' } } }, { realClock: true });
  await rig.router.receive(dm('telegram', '5550', 'hello bot', { sender: { id: '5550', name: 'Grace' } }));
  await rig.router.receive(dm('telegram', '5550', 'hello??'));
  assert.equal(rig.replies.length, 1, 'the code is sent once');
  assert.equal(rig.dispatched.length, 0);
  const code = /([0-9A-Z]{4}-[0-9A-Z]{4})/.exec(rig.replies[0].text)![1];

  const listed = await runCli(['pairing', 'list', '--json'], { home: rig.home.dir });
  assert.equal(listed.code, 0, listed.stderr);
  const { requests } = JSON.parse(listed.stdout) as { requests: { channel: string; code: string; senderId: string; senderName: string }[] };
  assert.deepEqual(requests.map((r) => [r.channel, r.code, r.senderId, r.senderName]), [['telegram', code, '5550', 'Grace']]);

  const approved = await runCli(['pairing', 'approve', 'telegram', code], { home: rig.home.dir });
  assert.equal(approved.code, 0, approved.stderr);
  assert.match(approved.stdout, /approved Grace \(5550\) on telegram/);

  const res = await rig.router.receive(dm('telegram', '5550', 'may I talk now?'));
  assert.equal(res.outcome, 'dispatched');
  assert.equal(rig.dispatched[0].message.text, 'may I talk now?');
  assert.equal(rig.audit.list({ action: 'pairing.approve' })[0].actor, 'cli:owner');
});

test('carapace pairing approve with a wrong code fails with exit 1 and says why', async (t) => {
  const rig = routerRig(t, { channels: { telegram: { dmPolicy: 'pairing' } } }, { realClock: true });
  await rig.router.receive(dm('telegram', '5550'));
  const res = await runCli(['pairing', 'approve', 'telegram', 'ZZZZ-ZZZZ'], { home: rig.home.dir });
  assert.equal(res.code, 1);
  assert.match(res.stderr, /no pending pairing request on telegram with code ZZZZ-ZZZZ/);
  assert.equal(rig.pairing.list().length, 1, 'the real request is untouched');
});

test('carapace pairing reject refuses the sender and without arguments prints usage with exit 2', async (t) => {
  const rig = routerRig(t, { channels: { telegram: { dmPolicy: 'pairing' } } }, { realClock: true });
  await rig.router.receive(dm('telegram', '5550'));
  const code = rig.pairing.list()[0].code;
  const rejected = await runCli(['pairing', 'reject', 'telegram', code], { home: rig.home.dir });
  assert.equal(rejected.code, 0, rejected.stderr);
  assert.equal((await rig.router.receive(dm('telegram', '5550'))).outcome, 'pairing');
  assert.equal(rig.dispatched.length, 0);
  const usage = await runCli(['pairing', 'approve', 'telegram'], { home: rig.home.dir });
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /usage: carapace pairing/);
});
