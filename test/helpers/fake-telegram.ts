// A loopback fake of the Telegram Bot API speaking its JSON: `POST /bot<token>/<method>`
// answering `{ok:true, result}` or `{ok:false, error_code, description, parameters}`.
// getUpdates long-polls and forgets updates below the offset it is given, as Telegram does.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export interface SentCall {
  method: string;
  params: Record<string, any>;
}

export interface FakeTelegram {
  url: string;
  token: string;
  bot: { id: number; username: string; first_name: string };
  /** Every Bot API call after auth, in order (getUpdates included). */
  calls: SentCall[];
  /** Sends (sendMessage/sendPhoto/...), in order. */
  sent(): SentCall[];
  /** Queue an update (update_id assigned); returns it. */
  pushMessage(message: Record<string, any>): { update_id: number; message: Record<string, any> };
  /** The next call(s) to `method` fail with this status (and retry_after for 429). */
  failNext(method: string, status: number, retryAfterSec?: number, times?: number): void;
  /** Destroy every open connection (in-flight long polls included). */
  dropConnections(): void;
  /** Resolves when a getUpdates call with at least this offset is waiting. */
  waitForPoll(minOffset: number, timeoutMs?: number): Promise<void>;
  webhook: { url: string; secret_token?: string } | null;
  close(): Promise<void>;
}

export async function startFakeTelegram(token = '123456:TEST-token'): Promise<FakeTelegram> {
  const bot = { id: 9000, username: 'carapace_bot', first_name: 'Carapace' };
  const calls: SentCall[] = [];
  let updates: { update_id: number; message: Record<string, any> }[] = [];
  let nextUpdateId = 500;
  let nextMessageId = 1;
  const failures: { method: string; status: number; retryAfter?: number }[] = [];
  const pollers = new Set<{ offset: number; wake: () => void }>();
  const pollWaiters = new Set<() => void>();
  const sockets = new Set<Socket>();
  const fake: FakeTelegram = {
    url: '',
    token,
    bot,
    calls,
    webhook: null,
    sent: () => calls.filter((c) => c.method.startsWith('send') && c.method !== 'sendChatAction'),
    pushMessage(message) {
      const u = { update_id: nextUpdateId++, message: { date: Math.floor(Date.now() / 1000), message_id: nextMessageId++, ...message } };
      updates.push(u);
      for (const p of pollers) p.wake();
      return u;
    },
    failNext(method, status, retryAfterSec, times = 1) {
      for (let i = 0; i < times; i++) failures.push({ method, status, retryAfter: retryAfterSec });
    },
    dropConnections() {
      for (const s of sockets) s.destroy();
    },
    waitForPoll(minOffset, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          for (const p of pollers)
            if (p.offset >= minOffset) {
              pollWaiters.delete(check);
              clearTimeout(t);
              resolve();
              return;
            }
        };
        const t = setTimeout(() => {
          pollWaiters.delete(check);
          reject(new Error(`no getUpdates poll with offset >= ${minOffset}`));
        }, timeoutMs);
        pollWaiters.add(check);
        check();
      });
    },
    close: async () => {
      for (const p of pollers) p.wake();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };

  const reply = (res: ServerResponse, status: number, body: unknown) => {
    if (res.destroyed) return;
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };
  const fail = (res: ServerResponse, code: number, description: string, retryAfter?: number) =>
    reply(res, code, { ok: false, error_code: code, description, ...(retryAfter ? { parameters: { retry_after: retryAfter } } : {}) });

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const m = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec(req.url ?? '');
    if (!m) return fail(res, 404, 'Not Found');
    if (m[1] !== token) return fail(res, 401, 'Unauthorized');
    let raw = '';
    for await (const c of req) raw += c;
    let params: Record<string, any> = {};
    try {
      params = raw ? JSON.parse(raw) : {};
    } catch {
      return fail(res, 400, 'Bad Request: invalid JSON');
    }
    const method = m[2];
    calls.push({ method, params });
    const f = failures.findIndex((x) => x.method === method);
    if (f >= 0) {
      const [x] = failures.splice(f, 1);
      if (x.status === 429) return fail(res, 429, `Too Many Requests: retry after ${x.retryAfter ?? 1}`, x.retryAfter ?? 1);
      if (x.status === 502) return void res.writeHead(502, { 'content-type': 'text/html' }).end('<html><body>502 Bad Gateway</body></html>');
      return fail(res, x.status, 'Injected failure');
    }
    switch (method) {
      case 'getMe':
        return reply(res, 200, { ok: true, result: { ...bot, is_bot: true } });
      case 'getUpdates': {
        if (fake.webhook) return fail(res, 409, "Conflict: can't use getUpdates method while webhook is active");
        const offset = Number(params.offset ?? 0);
        if (offset > 0) updates = updates.filter((u) => u.update_id >= offset);
        const ready = () => updates.filter((u) => u.update_id >= offset);
        if (!ready().length && Number(params.timeout ?? 0) > 0) {
          await new Promise<void>((resolve) => {
            const p = {
              offset,
              wake: () => {
                pollers.delete(p);
                clearTimeout(t);
                resolve();
              },
            };
            const t = setTimeout(p.wake, Number(params.timeout) * 1000);
            pollers.add(p);
            res.on('close', p.wake);
            for (const w of pollWaiters) w();
          });
        }
        return reply(res, 200, { ok: true, result: ready() });
      }
      case 'setWebhook':
        fake.webhook = { url: params.url, secret_token: params.secret_token };
        return reply(res, 200, { ok: true, result: true, description: 'Webhook was set' });
      case 'deleteWebhook':
        fake.webhook = null;
        return reply(res, 200, { ok: true, result: true });
      case 'sendChatAction':
        return reply(res, 200, { ok: true, result: true });
      case 'sendMessage':
      case 'sendPhoto':
      case 'sendDocument':
      case 'sendAudio':
      case 'sendVideo': {
        if (params.chat_id === undefined) return fail(res, 400, 'Bad Request: chat_id is empty');
        if (method === 'sendMessage' && !params.text) return fail(res, 400, 'Bad Request: message text is empty');
        if (method === 'sendMessage' && String(params.text).length > 4096) return fail(res, 400, 'Bad Request: message is too long');
        const result = { message_id: nextMessageId++, date: Math.floor(Date.now() / 1000), chat: { id: Number(params.chat_id) }, text: params.text };
        return reply(res, 200, { ok: true, result });
      }
      default:
        return fail(res, 404, 'Not Found: method not found');
    }
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err) => fail(res, 500, String(err)));
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  fake.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return fake;
}
