// carapace.net.websocket / carapace.net.connect through the real plugin host, in a
// real isolate (and a worker), against loopback servers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { makePlugin, throwawayPublisher } from '../helpers/plugins.ts';
import { startHost } from '../helpers/plugin-host.ts';
import { mapSecrets } from '../../core/secrets/source.ts';

const ctx = { agentId: 'main', sessionKey: 's' };
const SECRET = 's3cr3t-value-for-tests';
const OTHER = 'other-plugins-secret-value';

// A tool plugin that drives one socket from tool calls and records what it sees.
const SOCKET_PLUGIN = `
let sock = null;
const got = [];
let closeInfo = null;
const tools = [
  { name: 'open', run: async (i) => {
    try {
      sock = i.url ? await carapace.net.websocket(i.url, { headers: i.headers || {} }) : await carapace.net.connect(i.host, i.port, { tls: false });
      sock.onData((d) => got.push(d));
      sock.onClose((c) => { closeInfo = c; });
      return 'ok';
    } catch (e) { return 'refused: ' + e.message; }
  } },
  { name: 'write', run: async (i) => { try { await sock.write(i.data); return 'ok'; } catch (e) { return 'refused: ' + e.message; } } },
  { name: 'close', run: async (i) => { await sock.close(i.code); return 'ok'; } },
  { name: 'seen', run: async () => JSON.stringify({ got, closeInfo }) },
  { name: 'many', run: async (i) => {
    const out = [];
    for (let n = 0; n < i.n; n++) { try { await carapace.net.connect(i.host, i.port, {}); out.push('ok'); } catch (e) { out.push(e.message); } }
    return JSON.stringify(out);
  } },
];
export { tools };
`;

const toolDefs = (...names: string[]) => ({ tools: names.map((name) => ({ name, description: name, input: { type: 'object' } })) });
const NAMES = ['open', 'write', 'close', 'seen', 'many'];

interface TcpFake {
  port: number;
  received: string[];
  sockets: Socket[];
  closed: number;
  close(): Promise<void>;
}

/** A loopback TCP server that records what it gets and echoes every chunk back. */
async function tcpEcho(): Promise<TcpFake> {
  const fake: TcpFake = { port: 0, received: [], sockets: [], closed: 0, close: async () => {} };
  const server: Server = createServer((s) => {
    fake.sockets.push(s);
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      fake.received.push(d);
      s.write(`echo:${d}`);
    });
    s.on('close', () => fake.closed++);
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  fake.port = (server.address() as { port: number }).port;
  fake.close = () => {
    for (const s of fake.sockets) s.destroy();
    return new Promise((r) => server.close(() => r()));
  };
  return fake;
}

interface WsFake {
  port: number;
  received: string[];
  headers: Record<string, string | string[] | undefined>[];
  closes: number[];
  clients: WebSocket[];
  close(): Promise<void>;
}

async function wsEcho(): Promise<WsFake> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const fake: WsFake = { port: (wss.address() as { port: number }).port, received: [], headers: [], closes: [], clients: [], close: async () => {} };
  wss.on('connection', (ws, req) => {
    fake.clients.push(ws);
    fake.headers.push(req.headers);
    ws.on('message', (d) => {
      fake.received.push(String(d));
      ws.send(`echo:${String(d)}`);
    });
    ws.on('close', (code) => fake.closes.push(code));
  });
  fake.close = () => {
    for (const c of fake.clients) c.terminate();
    return new Promise((r) => wss.close(() => r()));
  };
  return fake;
}

async function until<T>(get: () => Promise<T>, ok: (v: T) => boolean, what: string): Promise<T> {
  for (let i = 0; i < 300; i++) {
    const v = await get();
    if (ok(v)) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function setup(t: { after(fn: () => unknown): void }, permissions: Record<string, unknown>, opts: { runtime?: 'isolate' | 'worker'; sockets?: { maxSockets?: number } } = {}) {
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const p = makePlugin({ 'index.js': SOCKET_PLUGIN }, { id: 'socky', runtime: opts.runtime ?? 'isolate', provides: toolDefs(...NAMES), permissions }, pub.kp);
  t.after(p.cleanup);
  const fx = await startHost(t, [p], pub.kp, { secrets: mapSecrets({ SOCKY_SECRET: SECRET, OTHER_SECRET: OTHER }), allowWorker: opts.runtime === 'worker', sockets: opts.sockets });
  const run = async (name: string, input: Record<string, unknown> = {}) => (await fx.host.invokeTool(name, input, ctx)).content;
  const seen = async () => JSON.parse(await run('seen')) as { got: string[]; closeInfo: { code?: number; reason?: string; error?: string } | null };
  return { fx, run, seen };
}

for (const runtime of ['isolate', 'worker'] as const) {
  test(`${runtime}: connect writes with the secret substituted for its listed host, and the echo comes back scrubbed`, async (t) => {
    const srv = await tcpEcho();
    t.after(srv.close);
    const { run, seen } = await setup(t, { net: [`127.0.0.1:${srv.port}`], secrets: { SOCKY_SECRET: ['127.0.0.1'] } }, { runtime });
    assert.equal(await run('open', { host: '127.0.0.1', port: srv.port }), 'ok');
    assert.equal(await run('write', { data: 'PASS {{secret:SOCKY_SECRET}}\r\n' }), 'ok');
    const s = await until(seen, (v) => v.got.join('').includes('\r\n'), 'the echo');
    assert.equal(srv.received.join(''), `PASS ${SECRET}\r\n`);
    assert.equal(s.got.join(''), 'echo:PASS [redacted]\r\n');
    assert.ok(!JSON.stringify(s).includes(SECRET));
  });

  test(`${runtime}: websocket headers and writes carry the secret, close codes reach the server, echoes are scrubbed`, async (t) => {
    const srv = await wsEcho();
    t.after(srv.close);
    const { run, seen } = await setup(t, { net: [`127.0.0.1:${srv.port}`], secrets: { SOCKY_SECRET: ['127.0.0.1'] } }, { runtime });
    assert.equal(await run('open', { url: `ws://127.0.0.1:${srv.port}/gw`, headers: { authorization: 'Bot {{secret:SOCKY_SECRET}}' } }), 'ok');
    assert.equal(srv.headers[0].authorization, `Bot ${SECRET}`);
    assert.equal(await run('write', { data: JSON.stringify({ op: 2, d: { token: '{{secret:SOCKY_SECRET}}' } }) }), 'ok');
    const s = await until(seen, (v) => v.got.length === 1, 'the echo');
    assert.deepEqual(JSON.parse(srv.received[0]), { op: 2, d: { token: SECRET } });
    assert.equal(s.got[0], 'echo:{"op":2,"d":{"token":"[redacted]"}}');
    assert.equal(await run('close', { code: 4900 }), 'ok');
    const after = await until(seen, (v) => v.closeInfo !== null, 'the close event');
    assert.equal(after.closeInfo!.code, 4900);
    assert.deepEqual(srv.closes, [4900]);
  });
}

test('a connect to a host:port outside the grant is refused at the kernel before any connection', async (t) => {
  const srv = await tcpEcho();
  t.after(srv.close);
  const { run } = await setup(t, { net: ['irc.example.org:6697'] });
  assert.match(await run('open', { host: '127.0.0.1', port: srv.port }), /^refused: .*may not connect to 127\.0\.0\.1:\d+: not granted/);
  assert.match(await run('open', { url: `ws://127.0.0.1:${srv.port}/` }), /^refused: .*not granted/);
  assert.equal(srv.sockets.length, 0);
});

test('a loopback target reached by a name is refused unless that literal host is granted', async (t) => {
  const srv = await tcpEcho();
  t.after(srv.close);
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const p = makePlugin({ 'index.js': SOCKET_PLUGIN }, { id: 'socky', provides: toolDefs(...NAMES), permissions: { net: [`*:${srv.port}`, `chat.example.org:${srv.port}`] } }, pub.kp);
  t.after(p.cleanup);
  const fx = await startHost(t, [p], pub.kp, { resolve: async () => [{ address: '127.0.0.1', family: 4 }] });
  const out = (await fx.host.invokeTool('open', { host: 'chat.example.org', port: srv.port }, ctx)).content;
  assert.match(out, /refused: .*127\.0\.0\.1 is a private, loopback or link-local address/);
  assert.equal(srv.sockets.length, 0);
});

test('a secret placeholder in a write is refused for a host the secret is not listed for, and nothing is sent', async (t) => {
  const srv = await tcpEcho();
  t.after(srv.close);
  const { run } = await setup(t, { net: [`127.0.0.1:${srv.port}`], secrets: { SOCKY_SECRET: ['irc.example.org'] } });
  assert.equal(await run('open', { host: '127.0.0.1', port: srv.port }), 'ok');
  assert.match(await run('write', { data: 'PASS {{secret:SOCKY_SECRET}}\r\n' }), /refused: .*may not send secret SOCKY_SECRET to 127\.0\.0\.1/);
  assert.match(await run('write', { data: 'PASS {{secret:OTHER_SECRET}}\r\n' }), /refused: .*may not send secret OTHER_SECRET/);
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(srv.received, []);
});

test('a secret the plugin may use is scrubbed from inbound data even when it did not send it on that socket', async (t) => {
  const srv = await tcpEcho();
  t.after(srv.close);
  const { run, seen } = await setup(t, { net: [`127.0.0.1:${srv.port}`], secrets: { SOCKY_SECRET: ['127.0.0.1'] } });
  assert.equal(await run('open', { host: '127.0.0.1', port: srv.port }), 'ok');
  await until(async () => srv.sockets.length, (n) => n === 1, 'the connection');
  // The server splits the value across two chunks: the kernel must not hand out the first half.
  srv.sockets[0].write(`hello ${SECRET.slice(0, 7)}`);
  await new Promise((r) => setTimeout(r, 5));
  srv.sockets[0].write(`${SECRET.slice(7)} bye\n`);
  const s = await until(seen, (v) => v.got.join('').includes('bye'), 'the data');
  assert.equal(s.got.join(''), 'hello [redacted] bye\n');
});

test('open sockets per plugin are capped', async (t) => {
  const srv = await tcpEcho();
  t.after(srv.close);
  const { run } = await setup(t, { net: [`127.0.0.1:${srv.port}`] }, { sockets: { maxSockets: 2 } });
  const out = JSON.parse(await run('many', { host: '127.0.0.1', port: srv.port, n: 3 })) as string[];
  assert.deepEqual(out.slice(0, 2), ['ok', 'ok']);
  assert.match(out[2], /too many open sockets \(max 2 per plugin\)/);
});

test('a websocket close code outside 1000 and 3000-4999 is refused', async (t) => {
  const srv = await wsEcho();
  t.after(srv.close);
  const { fx, run } = await setup(t, { net: [`127.0.0.1:${srv.port}`] });
  assert.equal(await run('open', { url: `ws://127.0.0.1:${srv.port}/` }), 'ok');
  const r = await fx.host.invokeTool('close', { code: 1006 }, ctx);
  assert.equal(r.isError, true);
  assert.match(r.content, /close code must be 1000 or 3000-4999/);
});

test('the sockets of a plugin are closed when it is stopped and when it crashes', async (t) => {
  const srv = await tcpEcho();
  t.after(srv.close);
  const ws = await wsEcho();
  t.after(ws.close);
  const { fx, run } = await setup(t, { net: [`127.0.0.1:${srv.port}`, `127.0.0.1:${ws.port}`] });
  assert.equal(await run('open', { host: '127.0.0.1', port: srv.port }), 'ok');
  await fx.host.restart('socky');
  await until(async () => srv.closed, (n) => n === 1, 'the server to see the close on restart');
  assert.equal(await run('open', { url: `ws://127.0.0.1:${ws.port}/` }), 'ok');
  // Kill the sandbox host process: every isolate dies with it.
  process.kill(fx.host.sandboxPid!, 'SIGKILL');
  await until(async () => ws.closes.length, (n) => n === 1, 'the server to see the close after the crash');
});
