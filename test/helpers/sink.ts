import { createServer, type Server } from 'node:http';
import type { OutboundMessage } from '../../core/plugin-api.ts';
import type { Sender } from '../../core/channels/delivery.ts';

// A loopback stand-in for a messaging platform's "send message" endpoint: JSON
// POST /send with an Idempotency-Key header. Like real platforms that support
// such keys, a repeat of a key is answered with the first result and not applied
// again. It can be told to fail a fraction of requests (503) or throttle (429).

export interface Receipt {
  key: string;
  text: string;
  chatId: string;
  at: number;
  status: number;
}

export interface Sink {
  url: string;
  /** Every request, in arrival order, with the status it got. */
  receipts: Receipt[];
  /** Applied messages by idempotency key → platform id (each applied once). */
  applied: Map<string, string>;
  /** Order in which messages were applied. */
  order: { key: string; chatId: string; text: string }[];
  failRate: number;
  /** When set, the next N requests get 429 with this Retry-After (seconds, decimals allowed). */
  throttle: { count: number; retryAfterS: number };
  close(): Promise<void>;
}

export async function startSink(opts: { failRate?: number; random?: () => number } = {}): Promise<Sink> {
  const random = opts.random ?? Math.random;
  let next = 1;
  const sink: Sink = {
    url: '',
    receipts: [],
    applied: new Map(),
    order: [],
    failRate: opts.failRate ?? 0,
    throttle: { count: 0, retryAfterS: 0 },
    close: async () => {},
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const key = String(req.headers['idempotency-key'] ?? '');
      let body: { text?: string; chatId?: string } = {};
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        // answered 400 below
      }
      const receipt: Receipt = { key, text: String(body.text), chatId: String(body.chatId), at: performance.now(), status: 200 };
      sink.receipts.push(receipt);
      const reply = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
        receipt.status = status;
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(JSON.stringify(payload));
      };
      if (!key || typeof body.text !== 'string') return reply(400, { error: 'idempotency key and text required' });
      const known = sink.applied.get(key);
      if (known) return reply(200, { id: known, duplicate: true });
      if (sink.throttle.count > 0) {
        sink.throttle.count--;
        return reply(429, { error: 'slow down' }, { 'retry-after': String(sink.throttle.retryAfterS) });
      }
      if (sink.failRate > 0 && random() < sink.failRate) return reply(503, { error: 'try again' });
      const id = `pm-${next++}`;
      sink.applied.set(key, id);
      sink.order.push({ key, chatId: String(body.chatId), text: body.text });
      reply(200, { id });
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address() as { port: number };
  sink.url = `http://127.0.0.1:${addr.port}/send`;
  sink.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return sink;
}

/** A channel sender speaking the sink's wire format, classifying failures the way a channel plugin should. */
export function httpSender(url: string): Sender {
  return async (msg: OutboundMessage) => {
    let res: Response;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': msg.idempotencyKey },
        body: JSON.stringify({ chatId: msg.chatId, text: msg.text }),
      });
    } catch (err) {
      throw { retryable: true, message: `network: ${(err as Error).message}` };
    }
    const body = (await res.json().catch(() => ({}))) as { id?: string; error?: string };
    if (res.ok) return { platformMessageId: body.id };
    const retryAfter = Number(res.headers.get('retry-after'));
    throw {
      retryable: res.status === 429 || res.status >= 500,
      retryAfterMs: Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : undefined,
      message: `HTTP ${res.status}: ${body.error ?? ''}`,
    };
  };
}
