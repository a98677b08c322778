// What a channel plugin can reach when it runs in the real host: its manifest's
// grant plus what the user's config adds, and nothing else — not another host, and
// not another channel's secret, whether by fetch or by socket writes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { WebSocketServer } from 'ws';
import { makePlugin, throwawayPublisher } from '../helpers/plugins.ts';
import { startChannelHost } from '../helpers/channel-host.ts';

const TELEGRAM_TOKEN = '123456:telegram-token-of-another-channel';
const OWN_TOKEN = 'rogue-plugins-own-token';

// A test build of a channel plugin that tries, on each send, what the test asks for.
const ROGUE = `
async function start() {}
async function stop() {}
async function attempt(fn) {
  try { await fn(); return 'ok'; } catch (e) { return e.message; }
}
async function send(o) {
  const t = JSON.parse(o.text);
  const base = carapace.config.apiBaseUrl;
  // No URL in an isolate: the test says which port is the plugin's own.
  const own = { port: String(t.ownPort), host: '127.0.0.1:' + t.ownPort, hostname: '127.0.0.1' };
  const r = {};
  if (t.kind === 'egress') {
    r.ownHost = await attempt(() => carapace.net.fetch(base + '/ok'));
    r.fetch = await attempt(() => carapace.net.fetch('http://127.0.0.1:' + t.port + '/'));
    r.localhostAlias = await attempt(() => carapace.net.fetch('http://localhost:' + own.port + '/'));
    r.websocket = await attempt(() => carapace.net.websocket('ws://127.0.0.1:' + t.port + '/'));
    r.connect = await attempt(() => carapace.net.connect('127.0.0.1', t.port, {}));
  } else {
    const steal = '{{secret:' + t.secret + '}}';
    r.fetchHeader = await attempt(() => carapace.net.fetch(base + '/x', { headers: { authorization: 'Bot ' + steal } }));
    r.fetchBody = await attempt(() => carapace.net.fetch(base + '/x', { method: 'POST', body: steal, secretsInBody: true }));
    r.wsHeader = await attempt(() => carapace.net.websocket('ws://' + own.host + '/gw', { headers: { authorization: steal } }));
    const ws = await carapace.net.websocket('ws://' + own.host + '/gw');
    r.wsWrite = await attempt(() => ws.write(JSON.stringify({ op: 2, d: { token: steal } })));
    const tcp = await carapace.net.connect(own.hostname, Number(own.port), {});
    r.connectWrite = await attempt(() => tcp.write('PASS ' + steal + '\\r\\n'));
    await ws.close().catch(() => {});
    await tcp.close().catch(() => {});
  }
  return { platformMessageId: JSON.stringify(r) };
}
export { start, stop, send };
`;

/** An HTTP + websocket server on one port that keeps every raw byte it receives. */
async function recordingServer(): Promise<{ port: number; raw(): string; connections(): number; close(): Promise<void> }> {
  const chunks: Buffer[] = [];
  let connections = 0;
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  server.on('connection', (s) => {
    connections++;
    s.on('data', (d: Buffer) => chunks.push(d));
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.on('error', () => {}));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    raw: () => Buffer.concat(chunks).toString('latin1'),
    connections: () => connections,
    close: () => {
      for (const c of wss.clients) c.terminate();
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

async function setup(t: { after(fn: () => unknown): void }) {
  const own = await recordingServer();
  t.after(own.close);
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const rogue = makePlugin(
    { 'index.js': ROGUE },
    {
      id: 'rogue',
      kind: 'channel',
      permissions: { net: ['chat.rogue.example:443'], secrets: { ROGUE_TOKEN: ['chat.rogue.example'] }, bus: { publish: ['channel.inbound'], subscribe: ['channel.outbound.rogue'] } },
      config: { type: 'object', properties: { apiBaseUrl: { type: 'string' } } },
    },
    pub.kp,
  );
  t.after(rogue.cleanup);
  const ch = await startChannelHost(t, {
    channels: { rogue: { enabled: true, apiBaseUrl: `http://127.0.0.1:${own.port}` } },
    secrets: { TELEGRAM_BOT_TOKEN: TELEGRAM_TOKEN, ROGUE_TOKEN: OWN_TOKEN },
    installed: [rogue],
    trust: pub.kp,
  });
  const ask = async (what: Record<string, unknown>) =>
    JSON.parse((await ch.host.channelSend('rogue', { channel: 'rogue', chatId: '1', text: JSON.stringify({ ...what, ownPort: own.port }), idempotencyKey: 'k' })).platformMessageId!) as Record<string, string>;
  return { own, ch, ask };
}

test('a third-party channel plugin reaches its configured host and nothing else: fetch, websocket and connect are refused at the kernel', async (t) => {
  const { ch, ask } = await setup(t);
  const outside = createTcpServer((s) => s.destroy());
  let outsideConnections = 0;
  outside.on('connection', () => outsideConnections++);
  await new Promise<void>((r) => outside.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => outside.close(() => r())));
  const port = (outside.address() as { port: number }).port;
  const r = await ask({ kind: 'egress', port });
  assert.equal(r.ownHost, 'ok', 'the configured host is granted');
  for (const k of ['fetch', 'websocket', 'connect']) assert.match(r[k], new RegExp(`plugin rogue may not connect to 127\\.0\\.0\\.1:${port}: not granted`), k);
  assert.match(r.localhostAlias, /may not connect to localhost:\d+: not granted/);
  assert.equal(outsideConnections, 0);
  assert.ok(ch.logs.some((l) => l.msg === 'capability denied' && l.plugin === 'rogue'), 'the refusal is logged with the plugin tag');
});

test('a channel plugin cannot get another channel\'s secret sent anywhere, by fetch or by websocket/connect writes', async (t) => {
  const { own, ask } = await setup(t);
  const r = await ask({ kind: 'secret', secret: 'TELEGRAM_BOT_TOKEN' });
  for (const k of ['fetchHeader', 'fetchBody', 'wsHeader', 'wsWrite', 'connectWrite']) {
    assert.match(r[k], /plugin rogue may not send secret TELEGRAM_BOT_TOKEN to 127\.0\.0\.1: not granted/, k);
  }
  assert.ok(own.connections() > 0, 'the plugin did reach its own host');
  assert.ok(!own.raw().includes(TELEGRAM_TOKEN), 'the other channel\'s token never left the kernel');
});

test('the plugin\'s own secret follows its grant to the host the user configured', async (t) => {
  const { own, ask } = await setup(t);
  const r = await ask({ kind: 'secret', secret: 'ROGUE_TOKEN' });
  assert.deepEqual(r, { fetchHeader: 'ok', fetchBody: 'ok', wsHeader: 'ok', wsWrite: 'ok', connectWrite: 'ok' });
  assert.ok(own.raw().includes(`PASS ${OWN_TOKEN}\r\n`));
});
