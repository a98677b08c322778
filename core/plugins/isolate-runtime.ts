// The gateway's side of the sandbox host: spawns it (lazily, once; under
// bubblewrap where it can, see confine.ts), loads plugins
// into it, relays hook calls out and capability calls in. A capability call is
// decided and performed here, in the gateway, by the plugin's host functions.

import { fork, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { FromSandbox, ToSandbox } from './sandbox-protocol.ts';
import { PluginCallError, errorInfo, type CapabilityHandler, type LoadSpec, type PluginInstance } from './runtime.ts';
import { redactString } from '../log/redact.ts';
import { secretValues } from '../secrets/known.ts';
import type { Logger } from '../log/logger.ts';
import { addIdleCollector, noteWork } from '../gateway/memory-reducer.ts';
import { confinedArgs, findBwrap } from './confine.ts';

// Plain JavaScript: the sandbox process then never loads Node's TypeScript stripper (~17 MB).
const SANDBOX_HOST = fileURLToPath(new URL('./sandbox-host.js', import.meta.url));

/**
 * Node flags of the sandbox process. isolated-vm needs Node's own snapshot off.
 * V8's optimizing compilers (Maglev, TurboFan, Wasm's tier-up) stay off where
 * third-party code runs: most exploited V8 bugs have been in them, and Node's V8 has
 * no heap sandbox to contain one; Chrome offers the same switch for sites a user does
 * not trust. Plugin code runs on the interpreter and the baseline compiler: CPU-heavy
 * plugin work is ~1.4x slower (parsing a 1.6 MB e-mail: 255 → 367 ms), a call costs
 * the same, and the process keeps ~2.5 MB of compiler code out of memory.
 */
export const SANDBOX_NODE_FLAGS: readonly string[] = ['--no-node-snapshot', '--disable-warning=ExperimentalWarning', '--no-turbofan', '--no-maglev', '--no-wasm-tier-up'];

interface Loaded {
  handler: CapabilityHandler;
  exitListeners: ((reason: string) => void)[];
  exited: boolean;
}

interface PendingCall {
  pid: string;
  resolve(v: unknown): void;
  reject(e: Error): void;
  onEvent?: (event: unknown) => void;
}

function errorMessage(err: unknown): string {
  return redactString(err instanceof Error ? err.message : String(err), secretValues());
}

/** The host exits when its IPC channel closes (sandbox-host.js); one that has not within 2 s is killed. */
function dismiss(child: ChildProcess): void {
  child.disconnect();
  setTimeout(() => child.kill('SIGKILL'), 2000).unref();
}

export class SandboxHost {
  #child: ChildProcess | null = null;
  #ready: Promise<ChildProcess> | null = null;
  readonly #plugins = new Map<string, Loaded>();
  readonly #calls = new Map<number, PendingCall>();
  readonly #loads = new Map<string, { resolve(): void; reject(e: Error): void }>();
  readonly #log: Logger;
  #nextId = 1;
  #closing = false;

  /** Why the host runs without bubblewrap, once that is known (null: confined, or not started yet). */
  #unconfined: string | null = null;

  constructor(log: Logger) {
    this.#log = log;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Null when the host runs under bubblewrap, else why it does not. */
  get unconfined(): string | null {
    return this.#unconfined;
  }

  #spawn(): Promise<ChildProcess> {
    this.#ready ??= (async () => {
      const bwrap = this.#unconfined === null ? findBwrap() : null;
      if (bwrap) {
        try {
          return await this.#start(bwrap);
        } catch (err) {
          if (this.#closing) throw err;
          this.#unconfined = `bubblewrap could not start it: ${errorMessage(err)}`;
        }
      } else {
        this.#unconfined ??= 'bubblewrap (bwrap) is not installed';
      }
      this.#log.warn('the sandbox host runs without OS confinement', { reason: this.#unconfined });
      return this.#start(null);
    })();
    return this.#ready;
  }

  /** Start the host (under bwrap when given); resolves when it is ready, rejects if it exits first. */
  #start(bwrap: string | null): Promise<ChildProcess> {
    return new Promise((resolve, reject) => {
      const execArgv = [...SANDBOX_NODE_FLAGS];
      const options = {
        // No secrets in its environment: the sandbox host never needs one. Two malloc
        // arenas, not eight per core: it is mostly idle and every arena keeps what it freed.
        env: { PATH: process.env.PATH ?? '', MALLOC_ARENA_MAX: '2' },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'] as ('ignore' | 'inherit' | 'ipc')[],
        serialization: 'json' as const,
      };
      const child = bwrap
        ? spawn(bwrap, confinedArgs({ node: process.execPath, execArgv, script: SANDBOX_HOST }), options)
        : fork(SANDBOX_HOST, [], { ...options, execArgv });
      // It becomes the host only once it is ready: one that dies before (bwrap unable
      // to start it) must not reset the state its unconfined successor will own.
      let ready = false;
      child.on('message', (m: FromSandbox) => {
        if (m.t === 'ready') {
          if (this.#closing) return void child.kill('SIGKILL'); // the plugin host stopped meanwhile
          ready = true;
          this.#child = child;
          resolve(child);
        } else this.#onMessage(m);
      });
      const removeCollector = addIdleCollector(() => this.#send(child, { t: 'gc' }));
      child.once('exit', removeCollector);
      child.once('error', reject);
      child.once('exit', (code, signal) => {
        reject(new Error(`sandbox host exited (${code ?? signal})`));
        if (!ready || this.#child !== child) return;
        this.#child = null;
        this.#ready = null;
        if (!this.#closing) this.#log.error('sandbox host exited', { code, signal });
        for (const [id, c] of this.#calls) {
          this.#calls.delete(id);
          c.reject(new PluginCallError('sandbox host exited', true));
        }
        for (const [pid, l] of this.#loads) {
          this.#loads.delete(pid);
          l.reject(new Error('sandbox host exited'));
        }
        for (const pid of [...this.#plugins.keys()]) this.#exit(pid, 'sandbox host exited');
      });
    });
  }

  #send(child: ChildProcess, m: ToSandbox): void {
    if (child.connected) child.send(m);
  }

  #exit(pid: string, reason: string): void {
    const p = this.#plugins.get(pid);
    if (!p || p.exited) return;
    p.exited = true;
    this.#plugins.delete(pid);
    for (const [id, c] of this.#calls) {
      if (c.pid !== pid) continue;
      this.#calls.delete(id);
      c.reject(new PluginCallError(`plugin ${pid} stopped: ${reason}`, true));
    }
    for (const l of p.exitListeners) l(reason);
  }

  #onMessage(m: FromSandbox): void {
    switch (m.t) {
      case 'loaded': {
        const l = this.#loads.get(m.pid);
        this.#loads.delete(m.pid);
        if (m.ok) l?.resolve();
        else l?.reject(new Error(m.error ?? 'load failed'));
        return;
      }
      case 'result': {
        noteWork();
        const c = this.#calls.get(m.id);
        if (!c) return;
        this.#calls.delete(m.id);
        let r: { ok: boolean; value?: unknown; error?: string; fatal?: boolean; info?: unknown };
        try {
          r = JSON.parse(m.reply);
        } catch {
          return c.reject(new PluginCallError('plugin returned malformed JSON', false));
        }
        if (r.ok) c.resolve(r.value);
        else c.reject(new PluginCallError(redactString(String(r.error).slice(0, 2000), secretValues()), r.fatal === true, errorInfo(r.info)));
        return;
      }
      case 'cap': {
        const p = this.#plugins.get(m.pid);
        const child = this.#child;
        if (!p || !child) return;
        let args: unknown[];
        try {
          args = JSON.parse(m.args) as unknown[];
        } catch {
          args = [];
        }
        p.handler(m.method, Array.isArray(args) ? args : []).then(
          (value) => this.#send(child, { t: 'capres', pid: m.pid, cid: m.cid, reply: JSON.stringify({ ok: true, value: value ?? null }) }),
          (err) => this.#send(child, { t: 'capres', pid: m.pid, cid: m.cid, reply: JSON.stringify({ ok: false, error: errorMessage(err) }) }),
        );
        return;
      }
      case 'emit': {
        const p = this.#plugins.get(m.pid);
        if (!p) return;
        let args: unknown[];
        try {
          args = JSON.parse(m.args) as unknown[];
        } catch {
          return;
        }
        if (m.method === '__event') {
          const [callId, event] = args as [number, unknown];
          const c = this.#calls.get(callId);
          if (c && c.pid === m.pid) c.onEvent?.(event);
          return;
        }
        if (m.method.startsWith('log.')) p.handler(m.method, args).catch(() => {});
        return;
      }
      case 'dead':
        this.#log.warn('plugin isolate stopped', { plugin: m.pid, reason: m.reason });
        this.#exit(m.pid, m.reason);
        return;
    }
  }

  async load(spec: LoadSpec, handler: CapabilityHandler): Promise<PluginInstance> {
    let child = await this.#spawn();
    while (child !== this.#child) child = await this.#spawn(); // retired while this load waited
    const pid = spec.id;
    if (this.#plugins.has(pid)) this.#exit(pid, 'replaced');
    const loaded: Loaded = { handler, exitListeners: [], exited: false };
    this.#plugins.set(pid, loaded);
    const code = spec.files.get(spec.entry);
    if (!code) throw new Error(`entry ${spec.entry} is not among the verified files`);
    await new Promise<void>((resolve, reject) => {
      this.#loads.set(pid, { resolve, reject });
      this.#send(child, {
        t: 'load',
        pid,
        code: code.toString('utf8'),
        filename: `plugin:${pid}/${spec.entry}`,
        memoryMb: spec.memoryMb,
        callTimeoutMs: spec.callTimeoutMs,
        cpuMsPerCall: spec.cpuMsPerCall,
        maxPending: spec.maxPending,
        config: spec.config,
      });
    }).catch((err) => {
      this.#plugins.delete(pid);
      throw err;
    });
    const self = this;
    return {
      runtime: 'isolate',
      call(hook, args, onEvent) {
        if (loaded.exited) return Promise.reject(new PluginCallError(`plugin ${pid} is not running`, true));
        const id = self.#nextId++;
        return new Promise((resolve, reject) => {
          self.#calls.set(id, { pid, resolve, reject, onEvent });
          self.#send(child, { t: 'call', id, pid, hook, args });
        });
      },
      deliver(kind, handlerId, payload) {
        if (loaded.exited) return Promise.resolve();
        const id = self.#nextId++;
        return new Promise<void>((resolve) => {
          self.#calls.set(id, { pid, resolve: () => resolve(), reject: () => resolve() });
          self.#send(child, { t: 'call', id, pid, hook: kind, args: [handlerId, payload] });
        });
      },
      async stop() {
        if (loaded.exited) return;
        loaded.exited = true;
        self.#plugins.delete(pid);
        self.#send(child, { t: 'unload', pid });
      },
      onExit(listener) {
        loaded.exitListeners.push(listener);
      },
    };
  }

  /** Let the process go when no plugin is loaded in it, nor being loaded: the next load starts another. */
  retireIfIdle(): void {
    const child = this.#child;
    if (!child || this.#plugins.size > 0 || this.#loads.size > 0 || this.#calls.size > 0) return;
    this.#child = null;
    this.#ready = null;
    this.#log.info('sandbox host retired: no plugin loaded');
    dismiss(child);
  }

  async close(): Promise<void> {
    this.#closing = true;
    const child = this.#child;
    if (!child) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      dismiss(child);
    });
  }
}
