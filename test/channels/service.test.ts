import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { ensureHome } from '../../core/home.ts';
import { startGateway } from '../../core/gateway/gateway.ts';
import { channelServiceFactories, type ChannelsService } from '../../core/channels/service.ts';
import type { Dispatch } from '../../core/channels/router.ts';
import type { Caller, MethodDef, MethodRegistry } from '../../core/bus/types.ts';
import type { ToolPlugin, ToolResult } from '../../core/plugin-api.ts';
import { tempHome } from '../helpers/home.ts';
import { startSink, httpSender, type Sink } from '../helpers/sink.ts';
import { localBus } from '../helpers/local-bus.ts';
import { dm } from '../helpers/channels.ts';

const CONFIG = {
  channels: {
    telegram: { dmPolicy: 'pairing', allowFrom: ['1001'], groups: { '-100': {} } },
    slack: { enabled: false },
  },
  agents: { list: [{ id: 'main' }, { id: 'ops' }] },
  bindings: [
    { agentId: 'main', match: { channel: '*' } },
    { agentId: 'ops', match: { channel: 'telegram', peer: '7777' } },
  ],
};

async function rig(t: TestContext) {
  const home = tempHome('chsvc');
  ensureHome(home.paths);
  writeFileSync(home.paths.config, JSON.stringify(CONFIG));
  const methods = new Map<string, MethodDef>();
  const registry: MethodRegistry = { register: (name, def) => void methods.set(name, def as unknown as MethodDef) };
  const events: { event: string; payload: unknown; scope: string }[] = [];
  const dispatched: Dispatch[] = [];
  const bus = localBus();
  const gw = await startGateway({
    home: home.dir,
    port: 0,
    logStream: null,
    services: channelServiceFactories(() => ({
      dispatch: (d) => void dispatched.push(d),
      bus: bus.port('kernel:channels'),
      methods: registry,
      events: { broadcast: (event, payload, scope) => void events.push({ event, payload, scope }) },
      capabilities: () => ({ chunkLimit: 50, markdown: 'none' }),
    })),
  });
  const sink: Sink = await startSink();
  const channels = gw.registry.get<ChannelsService>('channels');
  channels.setSender('telegram', httpSender(sink.url));
  t.after(async () => {
    await gw.stop();
    await sink.close();
    home.cleanup();
  });
  const owner: Caller = { deviceId: 'owner-device', role: 'operator', scopes: ['operator.pairing'], emit() {}, signal: new AbortController().signal };
  return { gw, channels, methods, events, dispatched, bus, sink, owner };
}

test('the pairing code reaches the sender through the delivery queue, the owner is told, and approval over pairing.approve lets them in', async (t) => {
  const r = await rig(t);
  await r.channels.router.receive(dm('telegram', '4242', 'hi'));
  await r.channels.queue.drained();
  assert.ok(r.sink.order.length >= 1 && r.sink.order.every((o) => o.chatId === '4242'));
  const code = /([0-9A-Z]{4}-[0-9A-Z]{4})/.exec(r.sink.order.map((o) => o.text).join('\n'))![1];
  assert.deepEqual(r.events.map((e) => [e.event, e.scope]), [['pairing.requested', 'operator.pairing']]);
  assert.equal((r.events[0].payload as { code: string }).code, code);

  const list = r.methods.get('pairing.list')!;
  assert.equal(list.scope, 'operator.pairing');
  assert.equal(((await list.handler({}, r.owner)) as { requests: unknown[] }).requests.length, 1);
  const approve = r.methods.get('pairing.approve')!;
  assert.equal(approve.scope, 'operator.pairing');
  await approve.handler({ channel: 'telegram', code, idempotencyKey: 'k1' }, r.owner);
  await r.channels.queue.drained();
  assert.match(r.sink.order.at(-1)!.text, /paired/);
  assert.equal((await r.channels.router.receive(dm('telegram', '4242', 'thanks'))).outcome, 'dispatched');
});

test('inbound messages published on the bus are routed, but only from the plugin that owns the channel', async (t) => {
  const r = await rig(t);
  r.bus.port('plugin:telegram').publish('channel.inbound', dm('telegram', '1001', 'from the real plugin'));
  r.bus.port('plugin:evil').publish('channel.inbound', dm('telegram', '1001', 'forged'));
  await delay(20);
  assert.deepEqual(r.dispatched.map((d) => d.message.text), ['from the real plugin']);
});

test('an agent reply on channel.outbound.<id> is chunked to the channel limit and delivered in order', async (t) => {
  const r = await rig(t);
  const text = 'First sentence is here. Second sentence follows it. Third one ends **it**.';
  r.bus.port('kernel:agent').publish('channel.outbound.telegram', { channel: 'telegram', chatId: '1001', text, idempotencyKey: 'run1:reply' });
  r.bus.port('kernel:agent').publish('channel.outbound.slack', { channel: 'telegram', chatId: '1001', text: 'topic mismatch', idempotencyKey: 'run1:x' });
  await delay(20);
  await r.channels.queue.drained();
  assert.ok(r.sink.order.length > 1 && r.sink.order.every((o) => o.text.length <= 50));
  assert.equal(r.sink.order.map((o) => o.text).join(' '), text.replace(/\*\*/g, ''));
  assert.deepEqual((await r.channels.status!()).queue, { pending: 0, inFlight: 0, delivered: r.sink.order.length, dead: 0, retries: 0 });
});

async function messageTool(r: Awaited<ReturnType<typeof rig>>): Promise<ToolPlugin['tools'][number]> {
  const port = r.bus.port('plugin:message');
  (globalThis as Record<string, unknown>).carapace = {
    bus: {
      publish: async (topic: string, msg: unknown, opts?: { sessionKey?: string }) => void port.publish(topic, msg, opts),
      subscribe: async (pattern: string, handler: (m: { topic: string; payload: unknown }) => void) => {
        const off = port.subscribe(pattern, handler);
        return { unsubscribe: async () => off() };
      },
    },
    timers: { sleep: (ms: number) => delay(ms) },
  };
  const entry = '../../plugins/tools/message/index.js'; // plain JS, as the isolate loads it
  const mod = (await import(entry)) as ToolPlugin;
  return mod.tools[0];
}

test('the message tool sends to an allowlisted peer through the durable queue', async (t) => {
  const r = await rig(t);
  const tool = await messageTool(r);
  const res = (await tool.run({ channel: 'telegram', to: '1001', text: 'build is green' }, { agentId: 'main', sessionKey: 'agent:main:main', runId: 'run-7' })) as ToolResult;
  assert.equal(res.isError, undefined, res.content);
  await r.channels.queue.drained();
  assert.deepEqual(r.sink.order.map((o) => [o.chatId, o.text]), [['1001', 'build is green']]);
});

test('the message tool refuses strangers, unlisted groups, disabled channels and peers bound to another agent', async (t) => {
  const r = await rig(t);
  const tool = await messageTool(r);
  const ctx = { agentId: 'main', sessionKey: 'agent:main:main', runId: 'run-8' };
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ channel: 'telegram', to: '31337', text: 'buy now' }, /not in allowFrom and not paired/],
    [{ channel: 'telegram', to: '-999', kind: 'group', text: 'hi' }, /not listed/],
    [{ channel: 'slack', to: 'U1', text: 'hi' }, /disabled/],
    [{ channel: 'irc', to: 'bob', text: 'hi' }, /not configured/],
    [{ channel: 'telegram', to: '7777', text: 'hi' }, /bound to another agent/],
  ];
  for (const [input, reason] of cases) {
    const res = (await tool.run(input, ctx)) as ToolResult;
    assert.equal(res.isError, true, JSON.stringify(input));
    assert.match(res.content, reason);
  }
  await r.channels.queue.drained();
  assert.equal(r.sink.receipts.length, 0);
});

test('message.send without a session on the bus message is refused, whatever its payload claims', async (t) => {
  const r = await rig(t);
  const port = r.bus.port('plugin:message');
  const answers: unknown[] = [];
  port.subscribe('message.result.r1', (m) => void answers.push(m.payload));
  port.publish('message.send', { requestId: 'r1', sessionKey: 'agent:main:main', target: { channel: 'telegram', chatId: '1001', chatType: 'direct' }, text: 'hi', idempotencyKey: 'k' });
  await delay(20);
  assert.deepEqual(answers, [{ ok: false, error: { code: 'FORBIDDEN', message: 'message.send must come from a tool call in a session' } }]);
  await r.channels.queue.drained();
  assert.equal(r.sink.receipts.length, 0);
});

test('the "you are paired" confirmation goes to the chat the code was asked from, not to the sender id (a Discord or Slack DM channel is not the user)', async (t) => {
  const r = await rig(t);
  await r.channels.router.receive({ ...dm('telegram', '4343', 'hi'), chatId: 'dm-channel-9' });
  await r.channels.queue.drained();
  const code = /([0-9A-Z]{4}-[0-9A-Z]{4})/.exec(r.sink.order.map((o) => o.text).join('\n'))![1];
  await r.methods.get('pairing.approve')!.handler({ channel: 'telegram', code, idempotencyKey: 'k2' }, r.owner);
  await r.channels.queue.drained();
  assert.match(r.sink.order.at(-1)!.text, /paired/);
  assert.deepEqual([...new Set(r.sink.order.map((o) => o.chatId))], ['dm-channel-9']);
});
