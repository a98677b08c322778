// The `worker` runtime: one long-lived worker thread per plugin (plugins such as
// providers keep clients and state between calls, which a piscina pool would
// scatter), with V8 resource limits, an empty environment (no secrets), and the
// capability API over its MessagePort. Only first-party or explicitly allowed
// manifests get here (manifest.ts refuses the rest).

import { Worker } from 'node:worker_threads';
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

export async function loadWorkerPlugin(spec: LoadSpec, host: HostFunctions): Promise<PluginInstance> {
  // The thread gets JavaScript only (strip-types.ts says why): the bootstrap as a data: URL, the plugin's files stripped.
  const files: Record<string, string> = {};
  for (const [name, bytes] of spec.files) files[name] = bytes.toString('utf8');
  const ts = Object.keys(files).filter(isTypeScript);
  const [bootstrap, ...js] = await stripTypes([readFileSync(BOOTSTRAP, 'utf8'), ...ts.map((n) => files[n])]);
  ts.forEach((name, i) => (files[name] = js[i]));
  const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(bootstrap)}`), {
    workerData: { id: spec.id, entry: spec.entry, dir: spec.dir, files, config: spec.config, kernelParent: KERNEL_PARENT },
    env: {},
    execArgv: [],
    resourceLimits: { maxOldGenerationSizeMb: spec.memoryMb, maxYoungGenerationSizeMb: Math.min(8, Math.max(2, spec.memoryMb / 8)), stackSizeMb: 4 },
    stdout: false,
    stderr: false,
  });
  const calls = new Map<number, { resolve(v: unknown): void; reject(e: Error): void; onEvent?: (e: unknown) => void; timer: NodeJS.Timeout }>();
  const streams = new Map<number, { abort(): void }>();
  /** Deliveries (bus, interval, socket events) waiting for the plugin to finish handling them. */
  const deliveries = new Map<number, () => void>();
  const exitListeners: ((reason: string) => void)[] = [];
  let nextId = 1;
  let exited = false;

  const removeCollector = addIdleCollector(() => worker.postMessage({ t: 'gc' }));
  const die = (reason: string) => {
    if (exited) return;
    exited = true;
    removeCollector();
    for (const c of calls.values()) {
      clearTimeout(c.timer);
      c.reject(new PluginCallError(`plugin ${spec.id} stopped: ${reason}`, true));
    }
    calls.clear();
    for (const d of deliveries.values()) d();
    deliveries.clear();
    for (const s of streams.values()) s.abort();
    streams.clear();
    void worker.terminate();
    for (const l of exitListeners) l(reason);
  };

  const scrub = (e: unknown) => redactString(e instanceof Error ? e.message : String(e), secretValues());

  async function serveFetch(fid: number, url: string, init: { method?: string; headers?: Record<string, string>; body?: string | Uint8Array | null }) {
    if (streams.size >= MAX_FETCHES) return worker.postMessage({ t: 'fetch-error', fid, error: `too many concurrent fetches (max ${MAX_FETCHES})` });
    try {
      const res = await host.fetchStream(url, { method: init.method, headers: init.headers, body: init.body ?? null });
      streams.set(fid, res);
      worker.postMessage({ t: 'fetch-head', fid, status: res.status, statusText: res.statusText, headers: res.headers, url: res.url });
      for await (const chunk of res.body) {
        if (!streams.has(fid) || exited) return;
        worker.postMessage({ t: 'fetch-chunk', fid, chunk: new Uint8Array(chunk) });
      }
      worker.postMessage({ t: 'fetch-end', fid });
    } catch (err) {
      if (!exited) worker.postMessage({ t: 'fetch-error', fid, error: scrub(err) });
    } finally {
      streams.delete(fid);
    }
  }

  worker.on('message', (m: { t: string; [k: string]: unknown }) => {
    switch (m.t) {
      case 'cap':
        host.call(m.method as string, m.args as unknown[]).then(
          (value) => !exited && worker.postMessage({ t: 'capres', cid: m.cid, ok: true, value: value ?? null }),
          (err) => !exited && worker.postMessage({ t: 'capres', cid: m.cid, ok: false, error: scrub(err) }),
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

  await new Promise<void>((resolve, reject) => {
    const onMsg = (m: { t: string }) => {
      if (m.t === 'ready') {
        worker.off('message', onMsg);
        resolve();
      }
    };
    worker.on('message', onMsg);
    worker.once('error', (err) => reject(new Error(`worker failed to load: ${scrub(err)}`)));
    worker.once('exit', (code) => reject(new Error(`worker exited while loading (${code})`)));
  });
  worker.on('error', (err) => die(`crashed: ${scrub(err)}`));
  worker.on('exit', (code) => die(`exited (${code})`));

  return {
    runtime: 'worker',
    call(hook, args, onEvent) {
      if (exited) return Promise.reject(new PluginCallError(`plugin ${spec.id} is not running`, true));
      const id = nextId++;
      return new Promise((resolve, reject) => {
        // A call that outlives its timeout means the thread is stuck: stop it (the host restarts it).
        const timer = setTimeout(() => die(`call timeout after ${spec.callTimeoutMs} ms`), spec.callTimeoutMs);
        calls.set(id, { resolve, reject, onEvent, timer });
        worker.postMessage({ t: 'call', id, hook, args });
      });
    },
    deliver(kind, handlerId, payload) {
      if (exited) return Promise.resolve();
      const id = nextId++;
      return new Promise<void>((resolve) => {
        deliveries.set(id, resolve);
        worker.postMessage({ t: 'call', id, hook: kind, args: [handlerId, payload] });
      });
    },
    async stop() {
      if (exited) return;
      exited = true;
      removeCollector();
      for (const c of calls.values()) clearTimeout(c.timer);
      for (const d of deliveries.values()) d();
      deliveries.clear();
      for (const s of streams.values()) s.abort();
      await worker.terminate();
    },
    onExit(l) {
      exitListeners.push(l);
    },
  };
}
