// A TEST HARNESS for channel plugin code, not the kernel: it gives a plugin a
// `carapace` object backed by real fetch, real `ws` websockets, real node:net/tls
// sockets, an in-memory kv, real timers and a recording bus. It enforces nothing
// (the plugin host does: allowlists, secret scoping, limits). What it does copy
// from the isolate is the shape of the world: the plugin source is evaluated in a
// fresh `vm` context holding only JS built-ins and `carapace` (no require,
// process, fetch, setTimeout, Buffer, TextEncoder), and every value crossing the
// boundary is JSON-copied.
import { readFileSync } from 'node:fs';
import { createContext, runInContext } from 'node:vm';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import WebSocket from 'ws';
import type { CapabilityApi, ChannelPlugin, FetchInit, SocketEvents } from '../../core/plugin-api.ts';
import { signal } from './wait.ts';

export interface BusRecord {
  topic: string;
  payload: unknown;
}

export interface Sandbox {
  carapace: CapabilityApi;
  /** Everything published, in order. */
  published: BusRecord[];
  /** The plugin-scoped kv rows; survives `load()` of a new instance (a restart). */
  kv: Map<string, unknown>;
  /** Deliver a bus message to the plugin's subscribers for `topic`. */
  deliver(topic: string, payload: unknown): Promise<void>;
  /** Wait until `count` messages have been published on `topic`; returns them. */
  waitForPublished(topic: string, count: number, timeoutMs?: number): Promise<unknown[]>;
  /** Every `timers.sleep(ms)` the plugin asked for, in order. */
  sleeps: number[];
  /** Log lines the plugin wrote. */
  logs: { level: string; msg: string; fields?: Record<string, unknown> }[];
  /** Evaluate a plugin's index.js in a fresh isolate-like context bound to this sandbox. */
  load<T = ChannelPlugin>(entryFile: string): T;
  /** Abort in-flight fetches, close sockets, cancel timers. */
  close(): void;
}

export interface SandboxOptions {
  config?: Record<string, unknown>;
  /** Values for `{{secret:NAME}}` placeholders (substituted in URLs, headers, bodies and socket writes). */
  secrets?: Record<string, string>;
  kv?: Map<string, unknown>;
}

const copy = <T>(v: T): T => (v === undefined ? v : JSON.parse(JSON.stringify(v)));

export function createSandbox(opts: SandboxOptions = {}): Sandbox {
  const secrets = opts.secrets ?? {};
  const kv = opts.kv ?? new Map<string, unknown>();
  const published: BusRecord[] = [];
  const logs: Sandbox['logs'] = [];
  const sleeps: number[] = [];
  const subscribers: { pattern: string; handler: (m: { topic: string; payload: unknown }) => unknown }[] = [];
  const published$ = signal();
  const aborts = new Set<AbortController>();
  const sockets = new Set<{ close(): void }>();
  const timers = new Set<NodeJS.Timeout>();
  const sleepers = new Set<() => void>();
  let closed = false;

  const subst = (s: string) => s.replace(/\{\{secret:([A-Z0-9_]+)\}\}/g, (m, name: string) => secrets[name] ?? m);
  const notify = () => published$.notify();

  function socketEvents(write: (d: string) => void, close: (code?: number) => void): {
    events: SocketEvents;
    emitData(d: string): void;
    emitClose(info: { code?: number; reason?: string; error?: string }): void;
  } {
    let onData: ((d: string) => void) | null = null;
    let onClose: ((i: { code?: number; reason?: string; error?: string }) => void) | null = null;
    const early: string[] = [];
    let closedInfo: { code?: number; reason?: string; error?: string } | null = null;
    let closedSent = false;
    const events: SocketEvents = {
      onData(h) {
        onData = h;
        for (const d of early.splice(0)) h(d);
      },
      onClose(h) {
        onClose = h;
        if (closedInfo && !closedSent) {
          closedSent = true;
          h(copy(closedInfo));
        }
      },
      async write(d) {
        if (closedInfo) throw new Error('socket is closed');
        write(subst(String(d)));
      },
      // Discord needs a close code (1000 ends the session, 4900 keeps it).
      async close(code?: number) {
        close(code);
      },
      async startTls() {
        throw new Error('the stub host has no TLS: test STARTTLS through the real plugin host');
      },
    };
    return {
      events,
      emitData(d) {
        if (onData) onData(d);
        else early.push(d);
      },
      emitClose(info) {
        if (closedInfo) return;
        closedInfo = info;
        if (onClose && !closedSent) {
          closedSent = true;
          onClose(copy(info));
        }
      },
    };
  }

  const carapace: CapabilityApi = {
    net: {
      async fetch(url: string, init: FetchInit = {}) {
        if (closed) throw new Error('sandbox closed');
        const ac = new AbortController();
        aborts.add(ac);
        const t = init.timeoutMs ? setTimeout(() => ac.abort(new Error('timeout')), init.timeoutMs) : undefined;
        try {
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(init.headers ?? {})) headers[k] = subst(v);
          const r = await fetch(subst(url), {
            method: init.method ?? 'GET',
            headers,
            body: init.body === undefined ? undefined : subst(init.body),
            signal: ac.signal,
          });
          const body = await r.text();
          return copy({ status: r.status, statusText: r.statusText, headers: Object.fromEntries(r.headers), url: r.url, body });
        } catch (err) {
          throw new Error(`fetch failed: ${(err as Error).message}`);
        } finally {
          clearTimeout(t);
          aborts.delete(ac);
        }
      },
      async websocket(url: string, o: { headers?: Record<string, string> } = {}) {
        if (closed) throw new Error('sandbox closed');
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(o.headers ?? {})) headers[k] = subst(v);
        const ws = new WebSocket(subst(url), { headers });
        const entry = { close: () => ws.terminate() };
        sockets.add(entry);
        const s = socketEvents(
          (d) => ws.send(d),
          (code) => ws.close(code ?? 1000),
        );
        ws.on('message', (data, isBinary) => s.emitData(isBinary ? Buffer.from(data as Buffer).toString('base64') : String(data)));
        ws.on('close', (code, reason) => {
          sockets.delete(entry);
          s.emitClose({ code, reason: String(reason) });
        });
        await new Promise<void>((resolve, reject) => {
          ws.once('open', () => resolve());
          ws.once('error', (err) => {
            sockets.delete(entry);
            reject(new Error(`websocket failed: ${err.message}`));
          });
        });
        ws.on('error', () => {});
        return s.events;
      },
      async connect(host: string, port: number, o: { tls?: boolean } = {}) {
        if (closed) throw new Error('sandbox closed');
        const sock: Socket = o.tls ? tlsConnect({ host, port, servername: host, rejectUnauthorized: false }) : netConnect({ host, port });
        sock.setEncoding('utf8');
        const entry = { close: () => sock.destroy() };
        sockets.add(entry);
        const s = socketEvents(
          (d) => sock.write(d),
          () => {
            sock.end();
            setTimeout(() => sock.destroy(), 1000).unref();
          },
        );
        sock.on('data', (d) => s.emitData(String(d)));
        sock.on('close', () => {
          sockets.delete(entry);
          s.emitClose({});
        });
        await new Promise<void>((resolve, reject) => {
          sock.once(o.tls ? 'secureConnect' : 'connect', () => resolve());
          sock.once('error', (err) => {
            sockets.delete(entry);
            reject(new Error(`connect failed: ${err.message}`));
          });
        });
        sock.on('error', (err) => s.emitClose({ error: err.message }));
        return s.events;
      },
    },
    fs: {
      read: async () => {
        throw new Error('fs is not granted to channel plugins');
      },
      write: async () => {
        throw new Error('fs is not granted to channel plugins');
      },
      list: async () => {
        throw new Error('fs is not granted to channel plugins');
      },
    },
    kv: {
      async get(key) {
        return copy(kv.get(key));
      },
      async set(key, value) {
        kv.set(key, copy(value));
      },
      async delete(key) {
        kv.delete(key);
      },
      async list(prefix) {
        return [...kv.entries()].filter(([k]) => k.startsWith(prefix)).map(([key, value]) => copy({ key, value }));
      },
    },
    bus: {
      async publish(topic, msg) {
        published.push({ topic, payload: copy(msg) });
        notify();
      },
      async subscribe(pattern, handler) {
        const sub = { pattern, handler: handler as (m: { topic: string; payload: unknown }) => unknown };
        subscribers.push(sub);
        return { unsubscribe: async () => void (subscribers.includes(sub) && subscribers.splice(subscribers.indexOf(sub), 1)) };
      },
    },
    timers: {
      sleep(ms) {
        sleeps.push(ms);
        return new Promise<void>((resolve) => {
          if (closed) return; // never resolves: the plugin is being torn down
          const wake = () => {
            timers.delete(t);
            sleepers.delete(wake);
            resolve();
          };
          const t = setTimeout(wake, ms);
          timers.add(t);
          sleepers.add(wake);
        });
      },
      async interval(ms, handler) {
        const t = setInterval(() => void Promise.resolve().then(handler).catch(() => {}), ms);
        timers.add(t);
        return {
          async cancel() {
            clearInterval(t);
            timers.delete(t);
          },
        };
      },
    },
    log: {
      info: (msg, fields) => void logs.push({ level: 'info', msg, fields }),
      warn: (msg, fields) => void logs.push({ level: 'warn', msg, fields }),
      error: (msg, fields) => void logs.push({ level: 'error', msg, fields }),
    },
    config: copy(opts.config ?? {}),
  };

  return {
    carapace,
    published,
    kv,
    logs,
    sleeps,
    async deliver(topic, payload) {
      for (const s of subscribers) if (s.pattern === topic) await s.handler(copy({ topic, payload }));
    },
    waitForPublished(topic, count, timeoutMs = 10_000) {
      const matching = () => published.filter((p) => p.topic === topic).map((p) => p.payload);
      return published$.wait(
        () => {
          const m = matching();
          return m.length >= count && m;
        },
        () => `timed out waiting for ${count} message(s) on ${topic}; have ${matching().length}`,
        timeoutMs,
      );
    },
    load<T>(entryFile: string): T {
      return loadPlugin<T>(entryFile, carapace);
    },
    close() {
      closed = true;
      for (const a of aborts) a.abort(new Error('sandbox closed'));
      for (const s of sockets) s.close();
      for (const t of timers) clearTimeout(t);
      timers.clear();
      sleepers.clear();
    },
  };
}

/**
 * Evaluate a plugin entry in a fresh context, as the isolate runtime does: the
 * trailing `export { a, b }` list becomes `module.exports`. Each call is a new
 * instance (a restart), so module-level state starts empty.
 */
export function loadPlugin<T = ChannelPlugin>(entryFile: string, carapace: CapabilityApi): T {
  const src = readFileSync(entryFile, 'utf8');
  const m = /\nexport\s*\{([^}]*)\};?\s*$/.exec(src);
  if (!m) throw new Error(`${entryFile}: expected one trailing "export { ... };" list`);
  if (/^\s*(import|export)\s/m.test(src.slice(0, m.index))) throw new Error(`${entryFile}: imports or inline exports are not loadable in an isolate`);
  const body = src.slice(0, m.index) + `\nmodule.exports = {${m[1]}};\n`;
  const context = createContext({ carapace, module: { exports: {} } });
  runInContext(body, context, { filename: entryFile });
  return (context.module as { exports: T }).exports;
}
