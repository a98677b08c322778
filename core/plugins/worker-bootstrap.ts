// Runs first in a worker-runtime thread, which hosts one plugin or, for
// first-party plugins, several (worker-runtime.ts says why). Each plugin arrives
// as a `load` message with its own MessagePort and its verified files; a module
// hook serves the files of its folder only from those hashed copies and refuses
// unlisted ones. Each gets the `carapace` capability API — the same as in an
// isolate, over its port — plus `carapace.net.webFetch`, a WHATWG fetch performed
// by the kernel. The gateway starts this file from a data: URL, types stripped
// (strip-types.ts), so it must not import anything relative to itself.

import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { registerHooks } from 'node:module';
import { pathToFileURL } from 'node:url';
import { AsyncLocalStorage } from 'node:async_hooks';

interface Boot {
  id: string;
  entry: string;
  dir: string;
  files: Record<string, string>;
  config: Record<string, unknown>;
}

const kernelParent = (workerData as { kernelParent: string }).kernelParent;

// Every load gets its own module graph: its files' URLs carry `?carapace-load=N`,
// so a plugin loaded again (after parking, or a second provider instance from the
// same folder) starts from fresh module state, not the first load's.
const LOAD_PARAM = 'carapace-load';
const loads = new Map<string, { base: string; files: Record<string, string>; id: string }>();
function loadOf(url: string) {
  const q = url.indexOf('?');
  if (q < 0) return null;
  const n = new URLSearchParams(url.slice(q + 1)).get(LOAD_PARAM);
  const l = n === null ? undefined : loads.get(n);
  return l && url.startsWith(l.base) ? { ...l, n, path: url.slice(0, q) } : null;
}

registerHooks({
  resolve(specifier, context, nextResolve) {
    const parent = context.parentURL ? loadOf(context.parentURL) : null;
    if (!parent) return nextResolve(specifier, context);
    // Bare imports (the provider SDKs) resolve from Carapace's own node_modules.
    if (!/^(\.|\/|[a-z][a-z0-9+.-]*:)/i.test(specifier)) return nextResolve(specifier, { ...context, parentURL: kernelParent });
    const r = nextResolve(specifier, { ...context, parentURL: parent.path });
    return r.url.startsWith(parent.base) && !r.url.includes('?') ? { ...r, url: `${r.url}?${LOAD_PARAM}=${parent.n}` } : r;
  },
  load(url, context, nextLoad) {
    const l = loadOf(url);
    if (!l) return nextLoad(url, context);
    const rel = decodeURIComponent(l.path.slice(l.base.length).split('#')[0]);
    if (!Object.hasOwn(l.files, rel)) throw new Error(`plugin ${l.id}: ${rel} is not listed in the manifest's files`);
    // The gateway sent TypeScript already stripped (strip-types.ts).
    const format = /\.c[jt]s$/.test(rel) ? 'commonjs' : rel.endsWith('.json') ? 'json' : 'module';
    return { format, source: l.files[rel], shortCircuit: true };
  },
});

// `globalThis.carapace` is the API of the plugin whose code is running: each
// plugin's module evaluation and every call into it run inside its own context.
const current = new AsyncLocalStorage<object>();
Object.defineProperty(globalThis, 'carapace', { get: () => current.getStore(), enumerable: true });

function errText(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : `thrown: ${String(e)}`;
}

function errorInfo(e: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  try {
    if (!e || typeof e !== 'object') return out;
    const r = e as Record<string, unknown>;
    if (typeof r.retryable === 'boolean') out.retryable = r.retryable;
    if (typeof r.retryAfterMs === 'number') out.retryAfterMs = r.retryAfterMs;
    if (typeof r.status === 'number') out.status = r.status;
  } catch {
    // a throwing getter leaves no hints
  }
  return out;
}

interface FetchHead {
  status: number;
  statusText: string;
  headers: Record<string, string>;
  url: string;
}

type CloseInfo = { code?: number; reason?: string; error?: string };

interface SocketSlot {
  data: ((d: string) => void) | null;
  close: ((i: CloseInfo) => void) | null;
  early: string[];
  closed: CloseInfo | null;
}

let loadCount = 0;

parentPort!.on('message', (m: { t: string; boot?: Boot; port?: MessagePort }) => {
  if (m.t === 'load') void hostPlugin(m.boot!, m.port!);
  // The gateway went idle (core/gateway/memory-reducer.ts); `gc` exists when its node flags expose it.
  else if (m.t === 'gc') (globalThis as { gc?: (o: object) => void }).gc?.({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  else if (m.t === 'ping') parentPort!.postMessage({ t: 'pong' });
});

async function hostPlugin(boot: Boot, port: MessagePort): Promise<void> {
  const n = String(++loadCount);
  const base = pathToFileURL(boot.dir.endsWith('/') ? boot.dir : boot.dir + '/').href;
  loads.set(n, { base, files: boot.files, id: boot.id });
  let nextId = 1;
  const waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  const handlers = new Map<string, (payload: unknown) => unknown>();
  const fetches = new Map<number, { head(h: FetchHead): void; fail(e: Error): void; controller?: ReadableStreamDefaultController<Uint8Array> }>();

  function call(method: string, args: unknown[]): Promise<unknown> {
    const cid = nextId++;
    return new Promise((resolve, reject) => {
      waiting.set(cid, { resolve, reject });
      port.postMessage({ t: 'cap', cid, method, args: JSON.parse(JSON.stringify(args)) });
    });
  }

  async function webFetch(input: string | URL | Request, init: RequestInit = {}): Promise<Response> {
    const req = input instanceof Request ? input : null;
    const url = req ? req.url : String(input);
    const method = init.method ?? req?.method ?? 'GET';
    const headers: Record<string, string> = {};
    new Headers(init.headers ?? req?.headers ?? {}).forEach((v, k) => (headers[k] = v));
    let body: string | Uint8Array | null = null;
    const rawBody = init.body ?? (req && req.body ? await req.arrayBuffer() : null);
    if (typeof rawBody === 'string') body = rawBody;
    else if (rawBody !== null && rawBody !== undefined) body = new Uint8Array(await new Response(rawBody as BodyInit).arrayBuffer());
    const signal = init.signal ?? req?.signal ?? null;
    if (signal?.aborted) throw signal.reason ?? new DOMException('aborted', 'AbortError');
    const fid = nextId++;
    return new Promise<Response>((resolve, reject) => {
      const entry: { head(h: FetchHead): void; fail(e: Error): void; controller?: ReadableStreamDefaultController<Uint8Array> } = {
        head(h) {
          const stream = new ReadableStream<Uint8Array>({
            start: (c) => {
              entry.controller = c;
            },
            cancel: () => {
              fetches.delete(fid);
              port.postMessage({ t: 'fetch-abort', fid });
            },
          });
          const nullBody = [101, 204, 205, 304].includes(h.status);
          const res = new Response(nullBody ? null : stream, { status: h.status, statusText: h.statusText, headers: h.headers });
          Object.defineProperty(res, 'url', { value: h.url });
          resolve(res);
        },
        fail(e) {
          fetches.delete(fid);
          if (entry.controller) entry.controller.error(e);
          else reject(e);
        },
      };
      fetches.set(fid, entry);
      signal?.addEventListener('abort', () => {
        port.postMessage({ t: 'fetch-abort', fid });
        entry.fail(signal.reason instanceof Error ? signal.reason : new DOMException('aborted', 'AbortError'));
      }, { once: true });
      port.postMessage({ t: 'fetch', fid, url, init: { method, headers, body } });
    });
  }

  // Socket events arrive through the `socket` hook in order; early ones wait for the handler.
  const sockets = new Map<number, SocketSlot>();
  function socketSlot(id: number): SocketSlot {
    let s = sockets.get(id);
    if (!s) {
      s = { data: null, close: null, early: [], closed: null };
      sockets.set(id, s);
    }
    return s;
  }
  function socketEvent(id: number, ev: { data?: string; close?: CloseInfo }): void {
    const s = socketSlot(id);
    if (ev.close) {
      s.closed = ev.close;
      if (s.close) {
        sockets.delete(id);
        s.close(ev.close);
      }
      return;
    }
    if (s.data) s.data(String(ev.data));
    else s.early.push(String(ev.data));
  }
  function socketApi(id: number) {
    const s = socketSlot(id);
    return Object.freeze({
      onData(handler: (d: string) => void) {
        s.data = handler;
        for (const d of s.early.splice(0)) handler(d);
      },
      onClose(handler: (i: CloseInfo) => void) {
        s.close = handler;
        if (s.closed) {
          sockets.delete(id);
          handler(s.closed);
        }
      },
      write: async (data: string) => void (await call('net.write', [id, String(data)])),
      close: async (code?: number) => void (await call('net.close', [id, code ?? null])),
      startTls: async () => void (await call('net.startTls', [id])),
    });
  }

  const carapace = {
    net: {
      fetch: (url: string, init?: unknown) => call('net.fetch', [url, init ?? {}]),
      websocket: async (url: string, opts?: unknown) => socketApi((await call('net.websocket', [url, opts ?? {}])) as number),
      connect: async (host: string, port: number, opts?: unknown) => socketApi((await call('net.connect', [host, port, opts ?? {}])) as number),
      webFetch,
    },
    fs: {
      read: (p: string) => call('fs.read', [p]),
      write: (p: string, d: string) => call('fs.write', [p, d]),
      list: (d: string) => call('fs.list', [d]),
    },
    kv: {
      get: (k: string) => call('kv.get', [k]),
      set: (k: string, v: unknown) => call('kv.set', [k, v ?? null]),
      delete: (k: string) => call('kv.delete', [k]),
      list: (p: string) => call('kv.list', [p ?? '']),
    },
    bus: {
      publish: (topic: string, msg: unknown, opts?: unknown) => call('bus.publish', [topic, msg, opts ?? {}]),
      subscribe: async (pattern: string, handler: (m: unknown) => unknown) => {
        const id = await call('bus.subscribe', [pattern]);
        handlers.set(`bus:${id}`, handler);
        return { unsubscribe: async () => (handlers.delete(`bus:${id}`), void (await call('bus.unsubscribe', [id]))) };
      },
    },
    timers: {
      sleep: (ms: number) => call('timers.sleep', [ms]),
      interval: async (ms: number, handler: () => unknown) => {
        const id = await call('timers.interval', [ms]);
        handlers.set(`interval:${id}`, handler);
        return { cancel: async () => (handlers.delete(`interval:${id}`), void (await call('timers.cancel', [id]))) };
      },
    },
    log: {
      info: (msg: string, fields?: unknown) => void call('log.info', [String(msg), fields ?? {}]).catch(() => {}),
      warn: (msg: string, fields?: unknown) => void call('log.warn', [String(msg), fields ?? {}]).catch(() => {}),
      error: (msg: string, fields?: unknown) => void call('log.error', [String(msg), fields ?? {}]).catch(() => {}),
    },
    config: boot.config,
  };
  const api = Object.freeze(carapace);
  let x: Record<string, unknown>;
  try {
    const mod = (await current.run(api, () => import(`${new URL(boot.entry, base).href}?${LOAD_PARAM}=${n}`))) as Record<string, unknown>;
    x = (mod.default && typeof mod.default === 'object' ? mod.default : mod) as Record<string, unknown>;
  } catch (e) {
    loads.delete(n);
    port.postMessage({ t: 'load-error', error: errText(e) });
    port.close();
    return;
  }

  async function run(hook: string, args: unknown[], id: number): Promise<unknown> {
    if (hook === 'describe') return { hooks: Object.keys(x) };
    if (hook === 'tool') {
      const tools = (Array.isArray(x.tools) ? x.tools : []) as { name: string; run(i: unknown, c: unknown): unknown }[];
      const t = tools.find((tt) => tt.name === args[0]);
      if (!t) throw new Error(`no such tool: ${String(args[0])}`);
      const r = await t.run(args[1], args[2]);
      return typeof r === 'string' ? { content: r } : r;
    }
    if (hook === 'complete') return (x.complete as (r: unknown, cb: (e: unknown) => void) => unknown)(args[0], (event) => port.postMessage({ t: 'event', id, event }));
    if (hook === 'socket') {
      const batch = args[1] as { events?: { data?: string; close?: CloseInfo }[] } | null;
      for (const ev of batch?.events ?? []) {
        try {
          socketEvent(Number(args[0]), ev);
        } catch (e) {
          carapace.log.error(`socket handler threw: ${errText(e)}`);
        }
      }
      return null;
    }
    if (hook === 'bus' || hook === 'interval') {
      await handlers.get(`${hook}:${String(args[0])}`)?.(args[1]);
      return null;
    }
    if (!['start', 'send', 'stop', 'models', 'index', 'search', 'forget'].includes(hook) || typeof x[hook] !== 'function') throw new Error(`plugin has no hook ${hook}`);
    return (x[hook] as (...a: unknown[]) => unknown)(...args);
  }

  port.on('message', (m: { t: string; [k: string]: unknown }) => {
    switch (m.t) {
      case 'call': {
        const id = m.id as number;
        current.run(api, () => run(m.hook as string, m.args as unknown[], id)).then(
          (value) => port.postMessage({ t: 'result', id, ok: true, value: JSON.parse(JSON.stringify(value ?? null)) }),
          (err) => port.postMessage({ t: 'result', id, ok: false, error: errText(err), info: errorInfo(err) }),
        );
        return;
      }
      case 'capres': {
        const w = waiting.get(m.cid as number);
        if (!w) return;
        waiting.delete(m.cid as number);
        if (m.ok) w.resolve(m.value);
        else w.reject(Object.assign(new Error(String(m.error)), { name: 'CapabilityError' }));
        return;
      }
      case 'fetch-head':
        fetches.get(m.fid as number)?.head(m as unknown as FetchHead);
        return;
      case 'fetch-chunk':
        fetches.get(m.fid as number)?.controller?.enqueue(m.chunk as Uint8Array);
        return;
      case 'fetch-end': {
        const f = fetches.get(m.fid as number);
        fetches.delete(m.fid as number);
        f?.controller?.close();
        return;
      }
      case 'fetch-error':
        fetches.get(m.fid as number)?.fail(Object.assign(new TypeError(`fetch failed: ${String(m.error)}`), { cause: new Error(String(m.error)) }));
        return;
    }
  });
  // The gateway closes the port when it stops the plugin: its files are no longer
  // loadable and nothing of it is reachable from here (its modules stay in V8's
  // cache until the thread ends).
  port.once('close', () => {
    loads.delete(n);
    handlers.clear();
    waiting.clear();
    for (const f of fetches.values()) f.fail(new Error('plugin stopped'));
    fetches.clear();
    sockets.clear();
  });
  port.postMessage({ t: 'ready' });
}
