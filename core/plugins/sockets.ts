// Long-lived connections performed by the kernel on a plugin's behalf:
// `carapace.net.websocket(url, {headers})` and `carapace.net.connect(host, port, {tls})`.
// Every target goes through the checkpoint and is pinned to its checked address
// (net.ts `resolveTarget`); `{{secret:NAME}}` is substituted in headers and writes
// only for hosts listed for NAME; what comes back is scrubbed of the plugin's
// secret values before it reaches the plugin. Inbound events are queued per socket
// and handed to the plugin in ordered batches; a plugin that does not keep up
// pauses its socket's reading instead of growing the queue.

import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import WebSocket from 'ws';
import { NetError, PLACEHOLDER, pinnedLookup, resolveTarget, substitute, type NetOptions } from './net.ts';
import { REDACTED, partialSecretTail } from '../log/redact.ts';

export interface SocketLimits {
  /** Open sockets per plugin. */
  maxSockets: number;
  /** Inbound bytes queued for the plugin before the socket stops reading. */
  maxBuffered: number;
  /** Largest websocket message accepted, and largest single write. */
  maxMessageBytes: number;
  connectTimeoutMs: number;
}

export const DEFAULT_SOCKET_LIMITS: SocketLimits = { maxSockets: 8, maxBuffered: 1024 * 1024, maxMessageBytes: 4 * 1024 * 1024, connectTimeoutMs: 15_000 };

export type SocketEvent = { data: string } | { close: { code?: number; reason?: string; error?: string } };

export interface SocketTableOptions extends Pick<NetOptions, 'grant' | 'secrets' | 'resolve'> {
  limits?: Partial<SocketLimits>;
  /** Hand a batch of events to the plugin; resolves once it has handled them. */
  deliver(socketId: number, batch: { events: SocketEvent[] }): Promise<void> | void;
  /** Values the plugin must never see (its granted secrets), besides those a socket's own writes used. */
  secretValues(): string[];
}

export interface SocketTable {
  websocket(url: unknown, opts: unknown): Promise<number>;
  connect(host: unknown, port: unknown, opts: unknown): Promise<number>;
  write(id: unknown, data: unknown): Promise<null>;
  close(id: unknown, code: unknown): Promise<null>;
  /** STARTTLS: upgrade a plain TCP socket to TLS in place, verifying the certificate for the host it was opened to. */
  startTls(id: unknown): Promise<null>;
  readonly size: number;
  /** The plugin stopped: drop every socket at once, nothing more is delivered. */
  closeAll(): void;
}

// Set by the kernel or the websocket handshake, never by the plugin.
const DROPPED_WS_HEADERS = /^(host|connection|upgrade|content-length|transfer-encoding|proxy-.*|sec-websocket-.*)$/i;
const MIN_SECRET = 4;
/** How long a trailing fragment that could begin a secret waits for the rest of it. */
const HOLD_MS = 25;

interface Entry {
  id: number;
  host: string;
  used: Set<string>;
  scrubList: string[];
  queue: SocketEvent[];
  queued: number;
  flushing: boolean;
  closed: boolean;
  /** A stream's tail that might be the start of a secret value split across chunks. */
  held: string;
  holdTimer: NodeJS.Timeout | null;
  pause(): void;
  resume(): void;
  send(text: string): Promise<void>;
  end(code: number | null): void;
  destroy(): void;
  /** Plain TCP sockets only. */
  upgrade?(): Promise<void>;
  /** Between startTls() and the end of the handshake: a write now would leave in clear text. */
  upgrading?: boolean;
}

function scrubWith(text: string, values: string[]): string {
  let out = text;
  for (const v of values) if (out.includes(v)) out = out.split(v).join(REDACTED);
  return out;
}

export function createSocketTable(o: SocketTableOptions): SocketTable {
  const limits = { ...DEFAULT_SOCKET_LIMITS, ...o.limits };
  const table = new Map<number, Entry>();
  let nextId = 1;
  let closedAll = false;

  const values = (e: Entry) => [...new Set([...e.scrubList, ...e.used])].filter((v) => v.length >= MIN_SECRET).sort((a, b) => b.length - a.length);

  function flush(e: Entry): void {
    if (e.flushing || e.queue.length === 0 || closedAll) return;
    e.flushing = true;
    const events = e.queue.splice(0);
    e.queued = 0;
    e.resume();
    Promise.resolve()
      .then(() => o.deliver(e.id, { events }))
      .catch(() => {})
      .finally(() => {
        e.flushing = false;
        flush(e);
      });
  }

  function push(e: Entry, ev: SocketEvent): void {
    if (closedAll) return;
    e.queue.push(ev);
    if ('data' in ev) {
      e.queued += ev.data.length;
      if (e.queued > limits.maxBuffered) e.pause();
    }
    flush(e);
  }

  /** Stream data: scrub whole values now, hold back a tail that may be half of one. */
  function pushStream(e: Entry, chunk: string): void {
    const list = values(e);
    let text = e.held + chunk;
    e.held = '';
    if (e.holdTimer) clearTimeout(e.holdTimer);
    e.holdTimer = null;
    text = scrubWith(text, list);
    const tail = partialSecretTail(text, list);
    if (tail > 0) {
      e.held = text.slice(text.length - tail);
      text = text.slice(0, text.length - tail);
      e.holdTimer = setTimeout(() => {
        e.holdTimer = null;
        const held = e.held;
        e.held = '';
        if (held) push(e, { data: held });
      }, HOLD_MS);
      e.holdTimer.unref?.();
    }
    if (text) push(e, { data: text });
  }

  function closed(e: Entry, info: { code?: number; reason?: string; error?: string }): void {
    if (e.closed) return;
    e.closed = true;
    table.delete(e.id);
    if (e.holdTimer) clearTimeout(e.holdTimer);
    if (e.held) push(e, { data: e.held });
    e.held = '';
    const list = values(e);
    const clean: typeof info = {};
    if (info.code !== undefined) clean.code = info.code;
    if (info.reason) clean.reason = scrubWith(info.reason, list);
    if (info.error) clean.error = scrubWith(info.error, list);
    push(e, { close: clean });
  }

  /** Wait for a socket's connect or TLS handshake, with the connect timeout; `what` names the step in errors. */
  function handshake(sock: Socket, event: 'connect' | 'secureConnect', what: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new NetError(`${what} timed out`));
      }, limits.connectTimeoutMs);
      sock.once(event, () => {
        clearTimeout(timer);
        resolve();
      });
      sock.once('error', (err) => {
        clearTimeout(timer);
        reject(new NetError(`${what} failed: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
      });
    });
  }

  function activate(e: Entry): number {
    if (!e.closed) table.set(e.id, e);
    e.flushing = false;
    // After the id has gone back to the plugin (the reply is sent before this turn ends).
    setImmediate(() => flush(e));
    return e.id;
  }

  function admit(): void {
    if (closedAll) throw new NetError('plugin is stopped');
    if (table.size >= limits.maxSockets) throw new NetError(`too many open sockets (max ${limits.maxSockets} per plugin)`);
  }

  function entry(id: unknown): Entry {
    const e = typeof id === 'number' ? table.get(id) : undefined;
    if (!e || e.closed) throw new NetError('socket is closed');
    return e;
  }

  function base(host: string): Omit<Entry, 'pause' | 'resume' | 'send' | 'end' | 'destroy'> {
    const scrubList = Object.keys(o.grant.allow.secrets ?? {}).length ? o.secretValues() : [];
    // `flushing` until activated: events that arrive before the plugin has the socket id wait in the queue.
    return { id: nextId++, host, used: new Set(), scrubList, queue: [], queued: 0, flushing: true, closed: false, held: '', holdTimer: null };
  }

  return {
    get size() {
      return table.size;
    },

    async websocket(rawUrl, rawOpts) {
      admit();
      if (typeof rawUrl !== 'string') throw new TypeError('url must be a string');
      if (new RegExp(PLACEHOLDER.source).test(rawUrl)) throw new NetError('secret placeholders are allowed in websocket headers and writes, not in the URL');
      let url: URL;
      try {
        url = new URL(rawUrl);
      } catch {
        throw new NetError('not a valid URL');
      }
      if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new NetError(`only ws and wss URLs can be opened, not ${url.protocol}`);
      if (url.username || url.password) throw new NetError('credentials in URLs are not allowed; use a {{secret:NAME}} header');
      const host = url.hostname.replace(/^\[|\]$/g, '');
      const port = Number(url.port || (url.protocol === 'wss:' ? 443 : 80));
      const pinned = await resolveTarget(host, port, o);
      admit();
      const e0 = base(host);
      const headers: Record<string, string> = {};
      const given = rawOpts && typeof rawOpts === 'object' ? (rawOpts as { headers?: unknown }).headers : undefined;
      for (const [k, v] of Object.entries(given && typeof given === 'object' ? (given as Record<string, unknown>) : {})) {
        if (DROPPED_WS_HEADERS.test(k)) continue;
        if (/[{}]/.test(k)) throw new NetError('secret placeholders are allowed in header values only');
        headers[k.toLowerCase()] = substitute(String(v), host, o, e0.used);
      }
      const ws = new WebSocket(url, {
        headers,
        lookup: pinnedLookup(pinned.address, pinned.family),
        followRedirects: false,
        perMessageDeflate: false,
        maxPayload: limits.maxMessageBytes,
        handshakeTimeout: limits.connectTimeoutMs,
        ...(isIP(host) ? {} : { servername: host }),
      } as WebSocket.ClientOptions);
      const e: Entry = {
        ...e0,
        pause: () => ws.pause(),
        resume: () => ws.isPaused && ws.resume(),
        send: (text) => new Promise((res, rej) => ws.send(text, (err) => (err ? rej(err) : res()))),
        end: (code) => ws.close(code ?? 1000),
        destroy: () => ws.terminate(),
      };
      // Listening before the handshake completes: a server's first frame may arrive with it.
      let lastError: string | undefined;
      ws.on('message', (data, isBinary) => {
        const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer);
        push(e, { data: isBinary ? buf.toString('base64') : scrubWith(buf.toString('utf8'), values(e)) });
      });
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => {
          ws.on('error', (err) => (lastError = err.message));
          ws.on('close', (code, reason) => closed(e, { code, reason: reason.toString('utf8'), ...(lastError ? { error: lastError } : {}) }));
          resolve();
        });
        ws.once('unexpected-response', (_req, res) => {
          ws.terminate();
          reject(new NetError(`websocket to ${host}:${port} was refused with HTTP ${res.statusCode}`));
        });
        ws.once('error', (err) => reject(new NetError(scrubWith(`websocket to ${host}:${port} failed: ${(err as NodeJS.ErrnoException).code ?? err.message}`, values(e)))));
      });
      if (closedAll) {
        ws.terminate();
        throw new NetError('plugin is stopped');
      }
      return activate(e);
    },

    async connect(rawHost, rawPort, rawOpts) {
      admit();
      if (typeof rawHost !== 'string' || rawHost.length === 0 || rawHost.length > 253) throw new TypeError('host must be a host name or address');
      const port = Number(rawPort);
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new TypeError('port must be an integer from 1 to 65535');
      const host = rawHost.replace(/^\[|\]$/g, '').toLowerCase();
      const tls = Boolean(rawOpts && typeof rawOpts === 'object' && (rawOpts as { tls?: unknown }).tls);
      const pinned = await resolveTarget(host, port, o);
      admit();
      const lookup = pinnedLookup(pinned.address, pinned.family);
      const sock: Socket = tls ? tlsConnect({ host, port, lookup, ...(isIP(host) ? {} : { servername: host }) }) : netConnect({ host, port, lookup });
      sock.setEncoding('utf8');
      // The socket bytes travel on: the plain one, or the TLS one STARTTLS put on top of it.
      let current: Socket = sock;
      let lastError: string | undefined;
      const onData = (d: string) => pushStream(e, d);
      const e: Entry = {
        ...base(host),
        pause: () => current.pause(),
        resume: () => current.isPaused() && current.resume(),
        send: (text) => new Promise((res, rej) => current.write(text, (err) => (err ? rej(err) : res()))),
        end: () => {
          current.end();
          setTimeout(() => current.destroy(), 1000).unref();
        },
        destroy: () => current.destroy(),
        upgrade: tls
          ? undefined
          : async () => {
              // Whatever the server sent after its go-ahead arrived in clear text and could
              // be a man in the middle's injection (CVE-2011-0411): refuse rather than mix it
              // in. Data not yet handed to the plugin is checked here; what was handed over
              // arrives before this call's answer, where the plugin checks its own buffer.
              sock.off('data', onData);
              if (e.held || e.queue.length > 0 || sock.readableLength > 0) throw new NetError('refusing STARTTLS: data arrived after the go-ahead, before the handshake');
              const secure = tlsConnect({ socket: sock, host, ...(isIP(host) ? {} : { servername: host }) });
              await handshake(secure, 'secureConnect', `TLS handshake with ${host}:${port}`);
              secure.setEncoding('utf8');
              secure.on('data', onData);
              secure.on('error', (err) => (lastError = (err as NodeJS.ErrnoException).code ?? err.message));
              current = secure;
            },
      };
      await handshake(sock, tls ? 'secureConnect' : 'connect', `connecting to ${host}:${port}`);
      if (closedAll) {
        sock.destroy();
        throw new NetError('plugin is stopped');
      }
      sock.on('error', (err) => (lastError = (err as NodeJS.ErrnoException).code ?? err.message));
      sock.on('data', onData);
      sock.on('close', () => closed(e, lastError ? { error: lastError } : {}));
      return activate(e);
    },

    async write(id, data) {
      const e = entry(id);
      if (typeof data !== 'string') throw new TypeError('data must be a string');
      if (Buffer.byteLength(data) > limits.maxMessageBytes) throw new NetError(`write larger than ${limits.maxMessageBytes} bytes`);
      if (e.upgrading) throw new NetError('write during STARTTLS: wait for startTls() to finish');
      const text = substitute(data, e.host, o, e.used);
      try {
        await e.send(text);
      } catch (err) {
        throw new NetError(scrubWith(`write failed: ${(err as Error).message}`, values(e)));
      }
      return null;
    },

    async startTls(id) {
      const e = entry(id);
      if (!e.upgrade) throw new NetError('STARTTLS needs a plain TCP socket (this one is a websocket or already TLS)');
      const upgrade = e.upgrade;
      e.upgrade = undefined; // once
      e.upgrading = true;
      try {
        await upgrade();
      } catch (err) {
        e.destroy();
        throw err instanceof NetError ? err : new NetError(`STARTTLS with ${e.host} failed: ${(err as Error).message}`);
      } finally {
        e.upgrading = false;
      }
      return null;
    },

    async close(id, code) {
      const e = entry(id);
      if (code !== null && code !== undefined) {
        if (typeof code !== 'number' || !(code === 1000 || (Number.isInteger(code) && code >= 3000 && code <= 4999))) {
          throw new TypeError('close code must be 1000 or 3000-4999');
        }
      }
      e.end((code as number | null | undefined) ?? null);
      return null;
    },

    closeAll() {
      closedAll = true;
      for (const e of table.values()) {
        e.closed = true;
        if (e.holdTimer) clearTimeout(e.holdTimer);
        e.destroy();
      }
      table.clear();
    },
  };
}
