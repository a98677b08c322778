// The loopback HTTP server both provider fakes stand on: a queue of scripted
// responses per test, a record of every request received, and a `hang` that holds
// a request open (for timeouts) until the server closes.
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import type { Socket } from 'node:net';

export interface RecordedRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** The parsed JSON body (or the raw text when it is not JSON). */
  body: any;
}

export interface ScriptedToolCall {
  id?: string;
  name: string;
  input?: unknown;
  /** Send these raw argument bytes instead of JSON.stringify(input) (for malformed-JSON tests). */
  rawJson?: string;
}

/** One scripted model turn, or an HTTP failure, or a hang. */
export type Scripted =
  | {
      text?: string | string[];
      toolCalls?: ScriptedToolCall[];
      stopReason?: string;
      usage?: { input?: number; output?: number; cacheRead?: number };
      /** Stop sending after the first chunks and hold the stream open (mid-stream timeout). */
      stallAfterStart?: boolean;
    }
  | { error: { status: number; type?: string; message?: string; retryAfterSeconds?: number; retryAfterMs?: number } }
  | { hang: true };

export type Responder = (req: RecordedRequest) => Scripted;

export interface FakeLlm {
  url: string;
  /** Requests received, in order. */
  requests: RecordedRequest[];
  /** Queue responses, served in order; when empty the default responder answers (or a 500). */
  push(...responses: (Scripted | Responder)[]): void;
  setDefault(responder: Responder | null): void;
  pending(): number;
  close(): Promise<void>;
}

export type Writer = (req: RecordedRequest, scripted: Scripted, res: ServerResponse) => void;

export async function startFakeLlm(route: (method: string, path: string) => boolean, write: Writer): Promise<FakeLlm> {
  const queue: (Scripted | Responder)[] = [];
  let fallback: Responder | null = null;
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = text;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        // recorded raw
      }
      const path = (req.url ?? '/').split('?')[0];
      const recorded: RecordedRequest = { method: req.method ?? 'GET', path, headers: req.headers, body };
      requests.push(recorded);
      if (!route(recorded.method, path)) {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: `fake: no route ${path}` } }));
        return;
      }
      const next = queue.shift() ?? fallback;
      if (!next) {
        res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { type: 'api_error', message: 'fake: nothing scripted' } }));
        return;
      }
      const scripted = typeof next === 'function' ? next(recorded) : next;
      if ('hang' in scripted) return; // held open until close()
      write(recorded, scripted, res);
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    push: (...r) => void queue.push(...r),
    setDefault: (r) => void (fallback = r),
    pending: () => queue.length,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export function textChunks(text: string | string[] | undefined): string[] {
  if (text === undefined) return [];
  return Array.isArray(text) ? text : [text];
}
