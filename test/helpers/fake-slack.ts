// A loopback fake of Slack's Socket Mode and Web API: `apps.connections.open`
// (app token) hands out one-time `ws` URLs; the socket says `hello`, carries
// `events_api` envelopes and redelivers any envelope not acknowledged by
// `{envelope_id}` on the next connection (with `retry_attempt`), as Slack does;
// `auth.test` and `chat.postMessage` (bot token) with 429 `Retry-After`; a post to
// a member id (`U…`/`W…`) lands in the app's DM with them and answers with its `D…` id.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import { signal } from './wait.ts';

interface Envelope {
  envelope_id: string;
  type: 'events_api';
  accepts_response_payload: boolean;
  retry_attempt: number;
  retry_reason: string;
  payload: { team_id: string; api_app_id: string; event: Record<string, any>; event_id: string; type: 'event_callback' };
}

export interface FakeSlack {
  api: string;
  appToken: string;
  botToken: string;
  botUserId: string;
  opens: number;
  posted: Record<string, any>[];
  acked: string[];
  /** Send an event (e.g. `{type:'message', channel, user, text, ts, channel_type}`) as an envelope. */
  event(ev: Record<string, any>): Envelope;
  /** Terminate the live socket (unacked envelopes will be redelivered). */
  drop(): void;
  /** Send a `disconnect` message with this reason. */
  disconnect(reason: string): void;
  failNextPost(status: number, retryAfterSec?: number): void;
  waitConnections(n: number, timeoutMs?: number): Promise<void>;
  /** Ignore acks (as if they were lost when the socket died): those envelopes are redelivered. */
  loseAcks(on: boolean): void;
  close(): Promise<void>;
}

export async function startFakeSlack(opts: { appToken?: string; botToken?: string } = {}): Promise<FakeSlack> {
  const appToken = opts.appToken ?? 'xapp-1-test';
  const botToken = opts.botToken ?? 'xoxb-test';
  const tickets = new Set<string>();
  let live: WebSocket | null = null;
  const unacked = new Map<string, Envelope>();
  const failures: { status: number; retryAfter?: number }[] = [];
  const connected = signal();
  const sockets = new Set<WebSocket>();
  let n = 0;
  let ts = 1_700_000_000;
  let helloCount = 0;
  let loseAcks = false;

  const fake: FakeSlack = {
    api: '',
    appToken,
    botToken,
    botUserId: 'UBOT',
    opens: 0,
    posted: [],
    acked: [],
    event(ev) {
      const env: Envelope = {
        envelope_id: `env-${++n}`,
        type: 'events_api',
        accepts_response_payload: false,
        retry_attempt: 0,
        retry_reason: '',
        payload: { team_id: 'T1', api_app_id: 'A1', event: { event_ts: ev.ts, ...ev }, event_id: `Ev${n}`, type: 'event_callback' },
      };
      unacked.set(env.envelope_id, env);
      if (live?.readyState === live?.OPEN) live?.send(JSON.stringify(env));
      return env;
    },
    drop() {
      live?.terminate();
    },
    disconnect(reason) {
      live?.send(JSON.stringify({ type: 'disconnect', reason, debug_info: { host: 'fake' } }));
    },
    loseAcks(on) {
      loseAcks = on;
    },
    failNextPost(status, retryAfterSec) {
      failures.push({ status, retryAfter: retryAfterSec });
    },
    async waitConnections(count, timeoutMs = 10_000) {
      await connected.wait(() => helloCount >= count, () => `slack connections ${helloCount}/${count}`, timeoutMs);
    },
    async close() {
      for (const s of sockets) s.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };

  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) =>
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers }).end(JSON.stringify(body));

  async function handle(req: IncomingMessage, res: ServerResponse) {
    let raw = '';
    for await (const c of req) raw += c;
    const auth = req.headers.authorization ?? '';
    const method = (req.url ?? '').replace(/^\/api\//, '');
    if (method === 'apps.connections.open') {
      if (auth !== `Bearer ${appToken}`) return json(res, 200, { ok: false, error: auth.includes('xoxb') ? 'not_allowed_token_type' : 'invalid_auth' });
      fake.opens++;
      const ticket = `t${fake.opens}`;
      tickets.add(ticket);
      return json(res, 200, { ok: true, url: `${fake.api.replace(/^http/, 'ws').replace(/\/api$/, '')}/link/?ticket=${ticket}&app_id=A1` });
    }
    if (auth !== `Bearer ${botToken}`) return json(res, 200, { ok: false, error: 'invalid_auth' });
    if (method === 'auth.test') return json(res, 200, { ok: true, url: 'https://fake.slack.com/', team: 'Fake', user: 'carapace', team_id: 'T1', user_id: fake.botUserId, bot_id: 'B1' });
    if (method === 'chat.postMessage') {
      const f = failures.shift();
      if (f?.status === 429) return json(res, 429, { ok: false, error: 'ratelimited' }, { 'retry-after': String(f.retryAfter ?? 1) });
      if (f) return void res.writeHead(f.status, { 'content-type': 'text/plain' }).end('upstream error');
      const body = JSON.parse(raw || '{}');
      if (!body.channel) return json(res, 200, { ok: false, error: 'channel_not_found' });
      if (!body.text) return json(res, 200, { ok: false, error: 'no_text' });
      if (String(body.text).length > 40000) return json(res, 200, { ok: false, error: 'msg_too_long' });
      const channel = /^[UW]/.test(String(body.channel)) ? `D${String(body.channel).slice(1)}` : body.channel;
      fake.posted.push({ ...body, channel });
      const t = `${++ts}.000100`;
      return json(res, 200, { ok: true, channel, ts: t, message: { text: body.text, ts: t, thread_ts: body.thread_ts } });
    }
    return json(res, 404, { ok: false, error: 'unknown_method' });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => json(res, 500, { ok: false, error: 'internal_error' }));
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws, req) => {
    sockets.add(ws);
    const ticket = new URL(req.url ?? '/', 'http://x').searchParams.get('ticket') ?? '';
    if (!tickets.delete(ticket)) return ws.close(1008, 'invalid ticket');
    live = ws;
    ws.send(JSON.stringify({ type: 'hello', num_connections: 1, debug_info: { host: 'fake', approximate_connection_time: 3600 }, connection_info: { app_id: 'A1' } }));
    for (const env of unacked.values()) {
      env.retry_attempt++;
      env.retry_reason = 'timeout';
      ws.send(JSON.stringify(env));
    }
    helloCount++;
    connected.notify();
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as { envelope_id?: string };
      if (m.envelope_id && !loseAcks && unacked.delete(m.envelope_id)) fake.acked.push(m.envelope_id);
    });
    ws.on('close', () => {
      sockets.delete(ws);
      if (live === ws) live = null;
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  fake.api = `http://127.0.0.1:${(server.address() as { port: number }).port}/api`;
  return fake;
}
