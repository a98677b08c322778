// bench.md `bus`: N paired clients (1, 16, 64), each publishing to a topic another
// client subscribes to; msgs/s and p50/p99 latency. Baseline in the same run: a
// bare `ws` server that relays each message to the same peer, same message size,
// no auth and no validation. Plus p50/p99 at a steady 1,000 msg/s.
import { performance } from 'node:perf_hooks';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import WebSocket, { WebSocketServer } from 'ws';
import { makeReport, percentile } from './lib.ts';
import { startGateway } from '../core/gateway/gateway.ts';
import { createBusService, type BusService } from '../core/bus/server.ts';
import { generateKeyPair } from '../core/identity/keys.ts';
import { nodeClient } from '../core/client/node.ts';
import type { BusClient } from '../core/client/client.ts';

const report = makeReport();
const SIZES = [1, 16, 64];
const RUN_MS = Number(process.env.BUS_BENCH_MS ?? 2500);
const WINDOW = 16; // messages in flight per publisher
const PAD = 'x'.repeat(200); // ~256-byte payload

interface Run {
  msgs: number;
  lat: number[];
  ms: number;
}

/** Drive N publishers; `send(i, seq, t0)` publishes; `deliver` must be called by the subscriber side. */
async function drive(n: number, send: (i: number, body: { i: number; t: number; pad: string }) => void, hook: (onDeliver: (i: number, t: number) => void) => void, paced?: number): Promise<Run> {
  const inflight = new Array(n).fill(0);
  const lat: number[] = [];
  let msgs = 0;
  let stopping = false;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  let outstanding = 0;
  const pump = (i: number) => {
    while (!stopping && inflight[i] < WINDOW) {
      inflight[i]++;
      outstanding++;
      send(i, { i, t: performance.now(), pad: PAD });
    }
  };
  hook((i, t) => {
    const now = performance.now();
    lat.push(now - t);
    msgs++;
    inflight[i]--;
    outstanding--;
    if (!paced) pump(i);
    if (stopping && outstanding === 0) done();
  });
  const start = performance.now();
  let timer: NodeJS.Timeout | null = null;
  if (paced) {
    let k = 0;
    timer = setInterval(() => {
      // 1 ms ticks are not exact: send what the schedule owes.
      const owed = Math.floor(((performance.now() - start) / 1000) * paced) - k;
      for (let j = 0; j < owed; j++, k++) {
        outstanding++;
        send(0, { i: 0, t: performance.now(), pad: PAD });
      }
    }, 1);
  } else for (let i = 0; i < n; i++) pump(i);
  await new Promise((r) => setTimeout(r, RUN_MS));
  stopping = true;
  if (timer) clearInterval(timer);
  const ms = performance.now() - start;
  if (outstanding > 0) await Promise.race([finished, new Promise((r) => setTimeout(r, 5000))]);
  return { msgs, lat, ms };
}

async function baseline(n: number, paced?: number): Promise<Run> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
  await once(wss, 'listening');
  const port = (wss.address() as { port: number }).port;
  const socks: WebSocket[] = [];
  // Relay each message to the peer that "subscribes" to the sender's topic.
  wss.on('connection', (ws, req) => {
    const i = Number(new URL(req.url!, 'http://x').searchParams.get('i'));
    ws.on('message', (d) => peers[(i + 1) % n]?.send(d, { binary: false }));
  });
  const peers: WebSocket[] = [];
  const clients: WebSocket[] = [];
  for (let i = 0; i < n; i++) {
    const c = new WebSocket(`ws://127.0.0.1:${port}/?i=${i}`, { perMessageDeflate: false });
    await once(c, 'open');
    clients.push(c);
  }
  // server-side sockets in connection order
  for (const s of wss.clients) socks.push(s);
  peers.push(...socks);
  const run = await drive(n, (i, body) => clients[i].send(JSON.stringify(body)), (onDeliver) => {
    for (const c of clients) c.on('message', (d) => {
      const b = JSON.parse(String(d)) as { i: number; t: number };
      onDeliver(b.i, b.t);
    });
  }, paced);
  for (const c of clients) c.terminate();
  wss.close();
  return run;
}

async function bus(n: number, paced?: number): Promise<Run> {
  const base = mkdtempSync(join(tmpdir(), 'carapace-bench-bus-'));
  const gw = await startGateway({ home: join(base, 'home'), port: 0, logStream: null, services: [createBusService()] });
  try {
    const svc = gw.registry.get<BusService>('bus');
    const url = `ws://127.0.0.1:${gw.port}/ws`;
    const pin = { id: gw.ctx.identity.gateway.id, publicKey: gw.ctx.identity.gateway.publicKeyB64 };
    const scopes = ['operator.read', 'operator.write'];
    const clients: BusClient[] = [];
    for (let i = 0; i < n; i++) {
      const key = generateKeyPair();
      // Paired the way `devices approve` does, without spending failed handshakes on it.
      const req = svc.devices.requestPairing({ deviceId: key.id, publicKey: key.publicKeyB64, role: 'operator', scopes, client: { name: 'bench', version: '1', platform: 'node' } });
      svc.devices.approve(req.code, {}, { actor: 'bench', scopes: ['operator.admin'] });
      const c = nodeClient({ url, key, pin, scopes, reconnect: false });
      await c.connect();
      clients.push(c);
    }
    let onDeliver!: (i: number, t: number) => void;
    for (let i = 0; i < n; i++) {
      await clients[(i + 1) % n].subscribe([`device.bench.${i}`], (m) => {
        const b = m.payload as { i: number; t: number };
        onDeliver(b.i, b.t);
      });
    }
    let seq = 0;
    const run = await drive(n, (i, body) => void clients[i].request('bus.publish', { topic: `device.bench.${i}`, payload: body, idempotencyKey: `k${seq++}` }).catch(() => {}), (d) => (onDeliver = d), paced);
    for (const c of clients) c.close();
    return run;
  } finally {
    await gw.stop('bench');
    rmSync(base, { recursive: true, force: true });
  }
}

for (const n of SIZES) {
  const b = await baseline(n);
  const r = await bus(n);
  const rate = (x: Run) => (x.msgs / x.ms) * 1000;
  report({ bench: 'bus', metric: `msgs_per_s_${n}_clients`, value: rate(r), unit: 'msg/s', baseline: rate(b), samples: r.msgs });
  report({ bench: 'bus', metric: `p50_ms_${n}_clients`, value: percentile(r.lat, 50), unit: 'ms', baseline: percentile(b.lat, 50), samples: r.lat.length });
  report({ bench: 'bus', metric: `p99_ms_${n}_clients`, value: percentile(r.lat, 99), unit: 'ms', baseline: percentile(b.lat, 99), samples: r.lat.length });
}
{
  const b = await baseline(1, 1000);
  const r = await bus(1, 1000);
  report({ bench: 'bus', metric: 'p50_ms_at_1000_msg_s', value: percentile(r.lat, 50), unit: 'ms', baseline: percentile(b.lat, 50), samples: r.lat.length });
  report({ bench: 'bus', metric: 'p99_ms_at_1000_msg_s', value: percentile(r.lat, 99), unit: 'ms', baseline: percentile(b.lat, 99), samples: r.lat.length });
}
