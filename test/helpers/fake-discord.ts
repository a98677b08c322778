// A loopback fake of Discord: a Gateway (v10 JSON over `ws`) with sessions that
// survive a dropped socket and replay missed dispatches on RESUME, and the REST
// routes a channel plugin uses (`GET /gateway/bot`, `POST /channels/{id}/messages`
// with nonce enforcement and 429 `retry_after`, `POST /channels/{id}/typing`,
// `POST /users/@me/channels` opening a DM). A message posted to a user's id, not a
// channel's, gets Discord's 404 Unknown Channel (code 10003).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import { signal } from './wait.ts';

interface Session {
  id: string;
  seq: number;
  log: { op: 0; t: string; s: number; d: unknown }[];
  ws: WebSocket | null;
}

export interface FakeDiscord {
  api: string;
  gateway: string;
  token: string;
  bot: { id: string; username: string };
  /** Frames the client sent, in order (op + d). */
  received: { op: number; d: any }[];
  identifies: number;
  resumes: number;
  /** REST message posts, in order. */
  posted: { channelId: string; body: any }[];
  typing: string[];
  /** Dispatch MESSAGE_CREATE to the live session (kept for replay if the socket is down). */
  message(d: Record<string, any>): Record<string, any>;
  /** Terminate the client's socket without a close frame (session kept for RESUME). */
  drop(): void;
  /** Send op 7 RECONNECT. */
  requestReconnect(): void;
  /** Send op 9 INVALID_SESSION. */
  invalidate(resumable: boolean): void;
  /** Stop answering heartbeats (the client should detect a zombie connection). */
  withholdAcks(on: boolean): void;
  failNextPost(status: number, retryAfterSec?: number): void;
  /** Resolves when the client has a live, identified (or resumed) socket. */
  waitReady(count?: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startFakeDiscord(opts: { heartbeatMs?: number; token?: string } = {}): Promise<FakeDiscord> {
  const token = opts.token ?? 'discord-test-token';
  const bot = { id: '1000', username: 'carapace' };
  const sessions = new Map<string, Session>();
  let live: Session | null = null;
  let nextId = 5000n;
  let nextSession = 1;
  let ack = true;
  let readyCount = 0;
  const ready = signal();
  const failures: { status: number; retryAfter?: number }[] = [];
  const nonces = new Map<string, any>();
  const users = new Set<string>();
  const dms = new Map<string, string>();
  const sockets = new Set<WebSocket>();

  const snowflake = () => String(nextId++);
  const sendTo = (ws: WebSocket | null, p: unknown) => {
    if (ws && ws.readyState === ws.OPEN) ws.send(JSON.stringify(p));
  };
  const dispatch = (s: Session, t: string, d: unknown) => {
    const p = { op: 0 as const, t, s: ++s.seq, d };
    s.log.push(p);
    sendTo(s.ws, p);
  };
  const markReady = () => {
    readyCount++;
    ready.notify();
  };

  const fake: FakeDiscord = {
    api: '',
    gateway: '',
    token,
    bot,
    received: [],
    identifies: 0,
    resumes: 0,
    posted: [],
    typing: [],
    message(d) {
      if (!live) throw new Error('no session');
      const full: Record<string, any> = { id: snowflake(), timestamp: new Date().toISOString(), attachments: [], mentions: [], content: '', ...d };
      if (full.author?.id) {
        users.add(String(full.author.id));
        // A message outside a guild is in the author's DM channel: the one Discord opens for them.
        if (!full.guild_id && !dms.has(String(full.author.id))) dms.set(String(full.author.id), String(full.channel_id));
      }
      dispatch(live, 'MESSAGE_CREATE', full);
      return full;
    },
    drop() {
      live?.ws?.terminate();
    },
    requestReconnect() {
      sendTo(live?.ws ?? null, { op: 7, d: null });
    },
    invalidate(resumable) {
      if (!resumable && live) {
        sessions.delete(live.id);
      }
      sendTo(live?.ws ?? null, { op: 9, d: resumable });
    },
    withholdAcks(on) {
      ack = !on;
    },
    failNextPost(status, retryAfterSec) {
      failures.push({ status, retryAfter: retryAfterSec });
    },
    async waitReady(count = 1, timeoutMs = 10_000) {
      await ready.wait(() => readyCount >= count, () => `gateway ready ${readyCount}/${count}`, timeoutMs);
    },
    async close() {
      for (const s of sockets) s.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };

  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) =>
    res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));

  async function handle(req: IncomingMessage, res: ServerResponse) {
    if (req.headers.authorization !== `Bot ${token}`) return json(res, 401, { message: '401: Unauthorized', code: 0 });
    let raw = '';
    for await (const c of req) raw += c;
    const url = req.url ?? '';
    if (req.method === 'GET' && url === '/api/v10/gateway/bot') {
      return json(res, 200, { url: fake.gateway, shards: 1, session_start_limit: { total: 1000, remaining: 999, reset_after: 0, max_concurrency: 1 } });
    }
    let m = /^\/api\/v10\/channels\/(\d+)\/typing$/.exec(url);
    if (req.method === 'POST' && m) {
      fake.typing.push(m[1]);
      return void res.writeHead(204).end();
    }
    if (req.method === 'POST' && url === '/api/v10/users/@me/channels') {
      const recipient = String(JSON.parse(raw || '{}').recipient_id ?? '');
      if (!users.has(recipient)) return json(res, 400, { message: 'Invalid Recipient(s)', code: 50033 });
      if (!dms.has(recipient)) dms.set(recipient, snowflake());
      return json(res, 200, { id: dms.get(recipient), type: 1, recipients: [{ id: recipient }] });
    }
    m = /^\/api\/v10\/channels\/(\d+)\/messages$/.exec(url);
    if (req.method === 'POST' && m) {
      if (users.has(m[1])) return json(res, 404, { message: 'Unknown Channel', code: 10003 });
      const f = failures.shift();
      if (f?.status === 429) {
        const ra = f.retryAfter ?? 1;
        return json(res, 429, { message: 'You are being rate limited.', retry_after: ra, global: false }, { 'retry-after': String(Math.ceil(ra)), 'x-ratelimit-scope': 'user' });
      }
      if (f) return json(res, f.status, { message: f.status >= 500 ? 'Bad Gateway' : 'Injected', code: 0 });
      const body = JSON.parse(raw || '{}');
      if (!body.content) return json(res, 400, { message: 'Cannot send an empty message', code: 50006 });
      if (String(body.content).length > 2000) return json(res, 400, { message: 'Invalid Form Body', code: 50035 });
      if (body.enforce_nonce && nonces.has(body.nonce)) return json(res, 200, nonces.get(body.nonce));
      const msg = { id: snowflake(), channel_id: m[1], content: body.content, author: { ...bot, bot: true }, nonce: body.nonce };
      if (body.nonce) nonces.set(body.nonce, msg);
      fake.posted.push({ channelId: m[1], body });
      return json(res, 200, msg);
    }
    return json(res, 404, { message: '404: Not Found', code: 0 });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => json(res, 500, { message: 'internal' }));
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws, req) => {
    sockets.add(ws);
    const q = new URL(req.url ?? '/', 'http://x').searchParams;
    if (q.get('v') !== '10' || q.get('encoding') !== 'json') return ws.close(4012, 'Invalid API version');
    let session: Session | null = null;
    ws.send(JSON.stringify({ op: 10, d: { heartbeat_interval: opts.heartbeatMs ?? 45_000 }, s: null, t: null }));
    ws.on('message', (data) => {
      const p = JSON.parse(String(data)) as { op: number; d: any };
      fake.received.push(p);
      switch (p.op) {
        case 1:
          if (ack) sendTo(ws, { op: 11 });
          return;
        case 2: {
          if (p.d?.token !== token) return ws.close(4004, 'Authentication failed.');
          fake.identifies++;
          session = { id: `sess-${nextSession++}`, seq: 0, log: [], ws };
          sessions.set(session.id, session);
          live = session;
          dispatch(session, 'READY', { v: 10, session_id: session.id, resume_gateway_url: fake.gateway, user: { ...bot, bot: true }, guilds: [] });
          markReady();
          return;
        }
        case 6: {
          if (p.d?.token !== token) return ws.close(4004, 'Authentication failed.');
          const s = sessions.get(p.d?.session_id);
          if (!s) return sendTo(ws, { op: 9, d: false });
          fake.resumes++;
          s.ws = ws;
          session = s;
          live = s;
          for (const e of s.log) if (e.s > Number(p.d.seq)) sendTo(ws, e);
          dispatch(s, 'RESUMED', {});
          markReady();
          return;
        }
      }
    });
    ws.on('close', () => {
      sockets.delete(ws);
      if (session && session.ws === ws) session.ws = null;
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  fake.api = `http://127.0.0.1:${port}/api/v10`;
  fake.gateway = `ws://127.0.0.1:${port}/gateway`;
  return fake;
}
