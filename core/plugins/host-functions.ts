// The host side of every `carapace.*` call a plugin makes, whatever its runtime.
// Calls arrive as (method, JSON args) and leave as JSON; each asks the checkpoint
// (capabilities.ts) before acting. Nothing here holds policy of its own.

import { lstatSync, mkdirSync, readFileSync, readdirSync, realpathSync, writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { check, CapabilityDenied, fsRoots, type Descriptor } from './capabilities.ts';
import type { Grant } from './grant.ts';
import { kernelFetch, kernelFetchStream, type KernelFetchInit, type NetOptions, type StreamedResponse } from './net.ts';
import type { SecretsSource } from '../secrets/source.ts';
import type { PluginKv } from './kv.ts';
import type { BusPort, BusMessage } from '../bus/types.ts';
import type { Logger } from '../log/logger.ts';
import type { FetchInit, FetchResult } from '../plugin-api.ts';
import { createSocketTable, type SocketLimits } from './sockets.ts';
import { redactString } from '../log/redact.ts';

export const FS_MAX_BYTES = 10 * 1024 * 1024;
const MAX_INTERVALS = 16;
const MIN_INTERVAL_MS = 50;
const MAX_SLEEP_MS = 10 * 60_000;
const MAX_LOG_CHARS = 4000;

export interface HostFunctionOptions {
  grant: Grant;
  secrets: SecretsSource;
  kv: PluginKv;
  /** The plugin's port on the bus (its ACL comes from the same grant); absent when there is no broker. */
  bus?: BusPort;
  log: Logger;
  limits: { maxResponseBytes: number; callTimeoutMs: number };
  /** Push an event into the plugin: a bus message for a subscription, an interval tick, socket events. */
  deliver(kind: 'bus' | 'interval' | 'socket', handlerId: number, payload: unknown): Promise<void> | void;
  resolve?: NetOptions['resolve'];
  proxy?: NetOptions['proxy'];
  sockets?: Partial<SocketLimits>;
  /** Whether the plugin is serving a tool call in this session now; a bus message may carry only such a session. */
  isServing?(sessionKey: string): boolean;
}

export interface HostFunctions {
  call(method: string, args: unknown[]): Promise<unknown>;
  /** Worker runtime's `webFetch`: same checks, the body as a stream. */
  fetchStream(url: string, init: KernelFetchInit): Promise<StreamedResponse>;
  /** Whether the plugin keeps something open between calls (a subscription, an interval, a socket): it then has work of its own. */
  holdsOpen(): boolean;
  close(): void;
}

function need(grant: Grant, d: Descriptor): void {
  const decision = check(grant, d);
  if (!decision.allowed) throw new CapabilityDenied(grant.pluginId, d, decision.reason);
}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string') throw new TypeError(`${what} must be a string`);
  return v;
}

export function createHostFunctions(o: HostFunctionOptions): HostFunctions {
  const { grant } = o;
  const netOpts: NetOptions = { grant, secrets: o.secrets, maxResponseBytes: o.limits.maxResponseBytes, maxTimeoutMs: o.limits.callTimeoutMs, resolve: o.resolve, proxy: o.proxy };
  const subscriptions = new Map<number, () => void>();
  const intervals = new Map<number, NodeJS.Timeout>();
  const sleeps = new Set<NodeJS.Timeout>();
  let nextId = 1;
  let closed = false;
  // The values of the secrets this plugin may use: never handed back to it, whatever echoes them.
  const grantedSecretValues = () =>
    Object.keys(grant.allow.secrets ?? {}).flatMap((name) => {
      const v = o.secrets.get(name);
      return v ? [v] : [];
    });
  const sockets = createSocketTable({
    grant,
    secrets: o.secrets,
    resolve: o.resolve,
    limits: { connectTimeoutMs: Math.max(1000, o.limits.callTimeoutMs), ...o.sockets },
    deliver: (id, batch) => (closed ? undefined : o.deliver('socket', id, batch)),
    secretValues: grantedSecretValues,
  });
  const scrubFetch = (r: FetchResult): FetchResult => {
    const values = grantedSecretValues();
    if (values.length === 0) return r;
    const clean = (t: string) => redactString(t, values);
    return { ...r, url: clean(r.url), body: clean(r.body), headers: Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, clean(v)])) };
  };

  const realRoots = (op: 'read' | 'write', which: 'allow' | 'deny') =>
    fsRoots(grant, op, which).flatMap((r) => {
      try {
        if (op === 'write' || r.startsWith(grant.roots.PLUGIN_DATA)) mkdirSync(r, { recursive: true, mode: 0o700 });
        return [realpathSync(r)];
      } catch {
        return [];
      }
    });

  /** Resolve a plugin-supplied path to a real absolute path (symlinks followed) and ask the checkpoint. */
  function fsPath(input: unknown, op: 'read' | 'write'): string {
    const raw = str(input, 'path');
    if (raw.includes('\0')) throw new TypeError('path contains a NUL byte');
    const expanded = raw.replace(/^\$(WORKSPACE|PLUGIN_DATA)(?=\/|$)/, (_m, n: 'WORKSPACE' | 'PLUGIN_DATA') => grant.roots[n]);
    const abs = isAbsolute(expanded) ? resolve(expanded) : resolve(grant.roots.PLUGIN_DATA, expanded);
    let real: string;
    try {
      if (op === 'read') real = realpathSync(abs);
      else {
        // The target may not exist yet: resolve its directory, and never write through a symlink.
        real = join(realpathSync(dirname(abs)), basename(abs));
        try {
          if (lstatSync(real).isSymbolicLink()) throw new CapabilityDenied(grant.pluginId, { cap: 'fs.write', path: real, roots: [], denyRoots: [] }, 'the target is a symlink');
        } catch (err) {
          if (err instanceof CapabilityDenied) throw err;
        }
      }
    } catch (err) {
      if (err instanceof CapabilityDenied) throw err;
      // Say "not found" only where the plugin may look; elsewhere the answer is "denied".
      const d: Descriptor = { cap: op === 'read' ? 'fs.read' : 'fs.write', path: abs, roots: realRoots(op, 'allow'), denyRoots: realRoots(op, 'deny') };
      need(grant, d);
      throw new Error(`no such file or directory: ${raw}`);
    }
    need(grant, { cap: op === 'read' ? 'fs.read' : 'fs.write', path: real, roots: realRoots(op, 'allow'), denyRoots: realRoots(op, 'deny') });
    return real;
  }

  const log = (level: 'info' | 'warn' | 'error') => (msg: unknown, fields: unknown) => {
    const f = fields && typeof fields === 'object' && !Array.isArray(fields) ? (fields as Record<string, unknown>) : {};
    const text = String(msg).slice(0, MAX_LOG_CHARS);
    // Plugin fields are namespaced so a plugin cannot forge the `plugin` tag or the level.
    o.log[level](text, Object.keys(f).length ? { fields: f } : undefined);
    return null;
  };

  const methods: Record<string, (...args: unknown[]) => unknown> = {
    'net.fetch': async (url, init) => scrubFetch(await kernelFetch(str(url, 'url'), (init ?? {}) as FetchInit, netOpts)),
    'net.websocket': (url, opts) => sockets.websocket(url, opts),
    'net.connect': (host, port, opts) => sockets.connect(host, port, opts),
    'net.write': (id, data) => sockets.write(id, data),
    'net.close': (id, code) => sockets.close(id, code),
    'net.startTls': (id) => sockets.startTls(id),
    'fs.read': (path) => {
      const p = fsPath(path, 'read');
      const st = lstatSync(p);
      if (!st.isFile()) throw new Error('not a file');
      if (st.size > FS_MAX_BYTES) throw new Error(`file larger than ${FS_MAX_BYTES} bytes`);
      return readFileSync(p, 'utf8');
    },
    'fs.write': (path, data) => {
      const text = str(data, 'data');
      if (Buffer.byteLength(text) > FS_MAX_BYTES) throw new Error(`data larger than ${FS_MAX_BYTES} bytes`);
      writeFileSync(fsPath(path, 'write'), text, { mode: 0o600 });
      return null;
    },
    'fs.list': (dir) => {
      const p = fsPath(dir, 'read');
      return readdirSync(p, { withFileTypes: true })
        .filter((e) => e.isFile() || e.isDirectory())
        .map((e) => ({ name: e.name, type: e.isDirectory() ? 'dir' : 'file' }));
    },
    'kv.get': (key) => o.kv.get(key as string),
    'kv.set': (key, value) => (o.kv.set(key as string, value), null),
    'kv.delete': (key) => (o.kv.delete(key as string), null),
    'kv.list': (prefix) => o.kv.list((prefix ?? '') as string),
    'bus.publish': (topic, msg, opts) => {
      const t = str(topic, 'topic');
      need(grant, { cap: 'bus.publish', topic: t });
      if (!o.bus) throw new Error('the bus is not available');
      const p = (opts ?? {}) as { sessionKey?: unknown; traceId?: unknown; idempotencyKey?: unknown };
      // Consumers act on a message's session (whose agent may message whom): a plugin
      // speaks for a session only while the kernel has it working in that session.
      const sessionKey = typeof p.sessionKey === 'string' ? p.sessionKey : undefined;
      if (sessionKey !== undefined && !o.isServing?.(sessionKey)) {
        throw new CapabilityDenied(grant.pluginId, { cap: 'bus.publish', topic: t }, `not serving a tool call in session ${sessionKey}`);
      }
      o.bus.publish(t, msg, {
        sessionKey,
        traceId: typeof p.traceId === 'string' ? p.traceId : undefined,
        idempotencyKey: typeof p.idempotencyKey === 'string' ? p.idempotencyKey : undefined,
      });
      return null;
    },
    'bus.subscribe': (pattern) => {
      const t = str(pattern, 'pattern');
      need(grant, { cap: 'bus.subscribe', topic: t });
      if (!o.bus) throw new Error('the bus is not available');
      const id = nextId++;
      const off = o.bus.subscribe(t, (m: BusMessage) => {
        if (!closed) o.deliver('bus', id, { topic: m.topic, payload: m.payload, sessionKey: m.sessionKey, id: m.id, from: m.from });
      });
      subscriptions.set(id, off);
      return id;
    },
    'bus.unsubscribe': (id) => {
      subscriptions.get(Number(id))?.();
      subscriptions.delete(Number(id));
      return null;
    },
    'timers.sleep': (ms) =>
      new Promise((res) => {
        const t = setTimeout(() => (sleeps.delete(t), res(null)), Math.min(Math.max(0, Number(ms) || 0), MAX_SLEEP_MS));
        sleeps.add(t);
      }),
    'timers.interval': (ms) => {
      if (intervals.size >= MAX_INTERVALS) throw new Error(`at most ${MAX_INTERVALS} intervals per plugin`);
      const id = nextId++;
      const every = Math.max(MIN_INTERVAL_MS, Number(ms) || 0);
      intervals.set(id, setInterval(() => !closed && o.deliver('interval', id, null), every));
      return id;
    },
    'timers.cancel': (id) => {
      clearInterval(intervals.get(Number(id)));
      intervals.delete(Number(id));
      return null;
    },
    'log.info': log('info'),
    'log.warn': log('warn'),
    'log.error': log('error'),
  };

  return {
    async call(method, args) {
      if (closed) throw new Error('plugin is stopped');
      const fn = Object.hasOwn(methods, method) ? methods[method] : undefined;
      if (!fn) throw new Error(`no such capability call: ${method}`);
      return fn(...(Array.isArray(args) ? args : []));
    },
    fetchStream: (url, init) => {
      if (closed) return Promise.reject(new Error('plugin is stopped'));
      return kernelFetchStream(url, { ...init, bodySecrets: false }, netOpts); // webFetch: headers only, always
    },
    holdsOpen: () => subscriptions.size > 0 || intervals.size > 0 || sockets.size > 0,
    close() {
      closed = true;
      sockets.closeAll();
      for (const off of subscriptions.values()) off();
      for (const t of intervals.values()) clearInterval(t);
      for (const t of sleeps) clearTimeout(t);
      subscriptions.clear();
      intervals.clear();
    },
  };
}
