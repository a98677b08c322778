// The `worker` runtime: plugins that need Node libraries (the provider SDKs,
// better-sqlite3) run in long-lived worker threads (they keep clients and state
// between calls, which a piscina pool would scatter), with V8 resource limits, an
// empty environment (no secrets), and the capability API over a MessagePort of
// their own. Only first-party or explicitly allowed manifests get here
// (manifest.ts refuses the rest).
//
// First-party plugins share one thread (`LoadSpec.thread`): a thread costs ~9 MB
// before it loads anything, and the worker runtime is full Node.js in the
// gateway's process, so separate threads were never a wall between them — only
// between their crashes. A plugin the user allowed with --allow-worker keeps a
// thread of its own, so its crash or its memory limit never takes a first-party
// plugin with it.

import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { readFileSync } from 'node:fs';
import type { HostFunctions } from './host-functions.ts';
import { PluginCallError, errorInfo, type LoadSpec, type PluginInstance } from './runtime.ts';
import { redactString } from '../log/redact.ts';
import { secretValues } from '../secrets/known.ts';
import { isTypeScript, stripTypes } from './strip-types.ts';
import { addIdleCollector, noteWork } from '../gateway/memory-reducer.ts';

const BOOTSTRAP = new URL('./worker-bootstrap.ts', import.meta.url);
/** Bare imports in a plugin (the provider SDKs) resolve from Carapace's own node_modules. */
const KERNEL_PARENT = new URL('../../package.json', import.meta.url).href;
const MAX_FETCHES = 32;
/** How long a thread may take to answer a ping before it counts as stuck. */
const PING_MS = 2000;

const scrub = (e: unknown) => redactString(e instanceof Error ? e.message : String(e), secretValues());

/** One worker thread and the plugins it hosts; it ends with its last plugin. */
interface PluginThread {
  readonly worker: Worker;
  readonly members: Set<(reason: string) => void>;
  dead: boolean;
  end(reason: string): void;
  /** Ends the thread (and so every plugin in it) unless it answers a ping in time. */
  checkAlive(reason: string): void;
}

const sharedThreads = new Map<string, PluginThread>();

async function startThread(name: string | null, memoryMb: number): Promise<PluginThread> {
  const [bootstrap] = await stripTypes([readFileSync(BOOTSTRAP, 'utf8')]);
  const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(bootstrap)}`), {
    workerData: { kernelParent: KERNEL_PARENT },
    env: {},
    execArgv: [],
    resourceLimits: { maxOldGenerationSizeMb: memoryMb, maxYoungGenerationSizeMb: Math.min(8, Math.max(2, memoryMb / 8)), stackSizeMb: 4 },
    stdout: false,
    stderr: false,
  });
  const removeCollector = addIdleCollector(() => worker.postMessage({ t: 'gc' }));
  const thread: PluginThread = {
    worker,
    members: new Set(),
    dead: false,
    end(reason) {
      if (thread.dead) return;
      thread.dead = true;
      removeCollector();
      if (name !== null && sharedThreads.get(name) === thread) sharedThreads.delete(name);
      void worker.terminate();
      for (const die of [...thread.members]) die(reason);
    },
    checkAlive(reason) {
      if (thread.dead) return;
      const timer = setTimeout(() => thread.end(reason), PING_MS);
      const onPong = (m: { t: string }) => {
        if (m.t !== 'pong') return;
        clearTimeout(timer);
        worker.off('message', onPong);
      };
      worker.on('message', onPong);
      worker.postMessage({ t: 'ping' });
    },
  };
  worker.on('error', (err) => thread.end(`crashed: ${scrub(err)}`));
  worker.on('exit', (code) => thread.end(`exited (${code})`));
  if (name !== null) sharedThreads.set(name, thread);
  return thread;
}

async function threadFor(spec: LoadSpec): Promise<PluginThread> {
  if (!spec.thread) return startThread(null, spec.memoryMb);
  const live = sharedThreads.get(spec.thread.name);
  return live && !live.dead ? live : startThread(spec.thread.name, spec.thread.memoryMb);
}

export async function loadWorkerPlugin(spec: LoadSpec, host: HostFunctions): Promise<PluginInstance> {
  // The thread gets JavaScript only (strip-types.ts says why): the plugin's files stripped.
  const files: Record<string, string> = {};
  for (const [name, bytes] of spec.files) files[name] = bytes.toString('utf8');
  const ts = Object.keys(files).filter(isTypeScript);
  const js = await stripTypes(ts.map((n) => files[n]));
  ts.forEach((name, i) => (files[name] = js[i]));

  const thread = await threadFor(spec);
  const { port1: port, port2 } = new MessageChannel();
  const calls = new Map<number, { resolve(v: unknown): void; reject(e: Error): void; onEvent?: (e: unknown) => void; timer: NodeJS.Timeout }>();
  const streams = new Map<number, { abort(): void }>();
  /** Deliveries (bus, interval, socket events) waiting for the plugin to finish handling them. */
  const deliveries = new Map<number, () => void>();
  const exitListeners: ((reason: string) => void)[] = [];
  let nextId = 1;
  let exited = false;
  let loading: ((reason: string) => void) | null = null;

  /** Leaves the thread; the thread ends when no plugin is left in it. */
  const leave = () => {
    exited = true;
    thread.members.delete(die);
    port.close();
    for (const c of calls.values()) clearTimeout(c.timer);
    for (const d of deliveries.values()) d();
    deliveries.clear();
    for (const s of streams.values()) s.abort();
    streams.clear();
    if (thread.members.size === 0) thread.end('no plugin left');
  };
  function die(reason: string) {
    if (exited) return;
    for (const c of calls.values()) c.reject(new PluginCallError(`plugin ${spec.id} stopped: ${reason}`, true));
    leave();
    calls.clear();
    if (loading) loading(reason);
    else for (const l of exitListeners) l(reason);
  }
  thread.members.add(die);

  async function serveFetch(fid: number, url: string, init: { method?: string; headers?: Record<string, string>; body?: string | Uint8Array | null }) {
    if (streams.size >= MAX_FETCHES) return port.postMessage({ t: 'fetch-error', fid, error: `too many concurrent fetches (max ${MAX_FETCHES})` });
    try {
      const res = await host.fetchStream(url, { method: init.method, headers: init.headers, body: init.body ?? null });
      streams.set(fid, res);
      port.postMessage({ t: 'fetch-head', fid, status: res.status, statusText: res.statusText, headers: res.headers, url: res.url });
      for await (const chunk of res.body) {
        if (!streams.has(fid) || exited) return;
        port.postMessage({ t: 'fetch-chunk', fid, chunk: new Uint8Array(chunk) });
      }
      port.postMessage({ t: 'fetch-end', fid });
    } catch (err) {
      if (!exited) port.postMessage({ t: 'fetch-error', fid, error: scrub(err) });
    } finally {
      streams.delete(fid);
    }
  }

  const ready = new Promise<void>((resolve, reject) => {
    loading = (reason) => reject(new Error(`worker failed to load: ${reason}`));
    port.on('message', (m: { t: string; [k: string]: unknown }) => {
      switch (m.t) {
        case 'ready':
          loading = null;
          return resolve();
        case 'load-error':
          // Only this plugin failed; the thread and the plugins already in it go on.
          die(scrub(String(m.error)));
          return;
        case 'cap':
          host.call(m.method as string, m.args as unknown[]).then(
            (value) => !exited && port.postMessage({ t: 'capres', cid: m.cid, ok: true, value: value ?? null }),
            (err) => !exited && port.postMessage({ t: 'capres', cid: m.cid, ok: false, error: scrub(err) }),
          );
          return;
        case 'fetch':
          void serveFetch(m.fid as number, m.url as string, m.init as never);
          return;
        case 'fetch-abort':
          streams.get(m.fid as number)?.abort();
          streams.delete(m.fid as number);
          return;
        case 'event':
          calls.get(m.id as number)?.onEvent?.(m.event);
          return;
        case 'result': {
          noteWork();
          const d = deliveries.get(m.id as number);
          if (d) {
            deliveries.delete(m.id as number);
            return d();
          }
          const c = calls.get(m.id as number);
          if (!c) return;
          calls.delete(m.id as number);
          clearTimeout(c.timer);
          if (m.ok) c.resolve(m.value);
          else c.reject(new PluginCallError(scrub(String(m.error).slice(0, 2000)), false, errorInfo(m.info)));
          return;
        }
      }
    });
  });
  thread.worker.postMessage({ t: 'load', boot: { id: spec.id, entry: spec.entry, dir: spec.dir, files, config: spec.config }, port: port2 }, [port2 as MessagePort]);
  await ready;

  return {
    runtime: 'worker',
    call(hook, args, onEvent) {
      if (exited) return Promise.reject(new PluginCallError(`plugin ${spec.id} is not running`, true));
      const id = nextId++;
      return new Promise((resolve, reject) => {
        // A call that outlives its timeout: this plugin is stopped (the host restarts
        // it), and if the thread itself is stuck, it ends with everything in it.
        const timer = setTimeout(() => {
          die(`call timeout after ${spec.callTimeoutMs} ms`);
          thread.checkAlive(`stuck: plugin ${spec.id}'s call did not return and its thread does not answer`);
        }, spec.callTimeoutMs);
        calls.set(id, { resolve, reject, onEvent, timer });
        port.postMessage({ t: 'call', id, hook, args });
      });
    },
    deliver(kind, handlerId, payload) {
      if (exited) return Promise.resolve();
      const id = nextId++;
      return new Promise<void>((resolve) => {
        deliveries.set(id, resolve);
        port.postMessage({ t: 'call', id, hook: kind, args: [handlerId, payload] });
      });
    },
    async stop() {
      if (exited) return;
      leave();
      if (thread.members.size === 0) await thread.worker.terminate();
    },
    onExit(l) {
      exitListeners.push(l);
    },
  };
}
