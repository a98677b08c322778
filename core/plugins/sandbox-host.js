// The sandbox host: a child process of the gateway that holds every isolate
// (isolated-vm) and nothing else — no secrets, no database, no network. Each
// plugin gets its own isolate with a memory limit; hooks are called with a
// timeout; capability calls are relayed to the gateway as JSON over IPC, where
// capabilities.ts decides and performs them. Started with --no-node-snapshot
// (isolated-vm's requirement on Node >= 20). Plain JavaScript, so that this
// process never loads the TypeScript stripper; its messages are typed in
// sandbox-protocol.ts.

import ivm from 'isolated-vm';
import { readFileSync } from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';

// A collector for when the gateway goes idle, taken before any isolate exists and
// the flag put back at once: an isolate created under --expose-gc gets a `gc`
// global, and plugins have no business forcing collections.
v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc');
v8.setFlagsFromString('--no-expose-gc');

const BOOTSTRAP = readFileSync(new URL('./isolate-bootstrap.js', import.meta.url), 'utf8');
const WATCHDOG_MS = 250;
/** Rejected capability calls (over the pending cap) tolerated before the plugin is stopped as a flood. */
const FLOOD_LIMIT = 10_000;

const sandboxes = new Map();
let nextCid = 1;

function send(msg) {
  if (process.connected) process.send?.(msg, undefined, undefined, () => {}); // a closing pipe is not an error here
}

/** `notify: false` when the gateway asked for it (unload, replace): a late `dead` would hit the plugin's next instance. */
function kill(sb, reason, notify = true) {
  if (sb.dead) return;
  sb.dead = true;
  sandboxes.delete(sb.pid);
  sb.pending.clear();
  try {
    sb.dispatch.release();
    sb.context.release();
    if (!sb.isolate.isDisposed) sb.isolate.dispose(); // terminates code still running in it
  } catch {
    // already gone
  }
  if (notify) send({ t: 'dead', pid: sb.pid, reason });
}

function answer(sb, cid, reply) {
  if (sb.dead) return;
  sb.inFlight++;
  sb.dispatch
    .apply(undefined, ['__capres', reply, cid], { result: { promise: true, copy: true }, timeout: sb.callTimeoutMs })
    .catch((err) => {
      if (!sb.dead) kill(sb, sb.isolate.isDisposed ? 'memory limit exceeded' : `callback failed: ${err.message}`);
    })
    .finally(() => sb.inFlight--);
}

function capCall(sb, text) {
  let cid, method, args;
  try {
    [cid, method, args] = JSON.parse(text);
  } catch {
    return kill(sb, 'malformed capability call');
  }
  if (typeof cid !== 'number' || typeof method !== 'string' || typeof args !== 'string') return kill(sb, 'malformed capability call');
  if (sb.pending.size >= sb.maxPending) {
    if (++sb.overflow > FLOOD_LIMIT) return kill(sb, 'capability call flood');
    return answer(sb, cid, JSON.stringify({ ok: false, error: `too many pending capability calls (max ${sb.maxPending})` }));
  }
  sb.pending.add(cid);
  send({ t: 'cap', pid: sb.pid, cid, method, args });
}

function load(m) {
  const old = sandboxes.get(m.pid);
  if (old) kill(old, 'replaced', false);
  const isolate = new ivm.Isolate({ memoryLimit: Math.max(8, m.memoryMb) });
  const context = isolate.createContextSync();
  const sb = {
    pid: m.pid,
    isolate,
    context,
    dispatch: null,
    callTimeoutMs: m.callTimeoutMs,
    cpuBudgetNs: BigInt(m.cpuMsPerCall) * 1_000_000n,
    maxPending: m.maxPending,
    pending: new Set(),
    overflow: 0,
    inFlight: 0,
    lastCpu: 0n,
    dead: false,
  };
  try {
    // The only way out of the isolate: one fire-and-forget callback taking strings.
    const emit = new ivm.Callback(
      (method, args) => {
        if (sb.dead || typeof method !== 'string' || typeof args !== 'string') return;
        if (method === '__cap') return capCall(sb, args);
        if (++sb.overflow > FLOOD_LIMIT * 10) return kill(sb, 'log/event flood');
        send({ t: 'emit', pid: sb.pid, method, args: args.length > 65536 ? args.slice(0, 65536) : args });
      },
      { ignored: true },
    );
    sb.dispatch = context.evalClosureSync(BOOTSTRAP, [emit, JSON.stringify(m.config ?? {})], {
      result: { reference: true },
      timeout: 1000,
    });
    const init = evaluatePlugin(isolate, context, m);
    sandboxes.set(m.pid, sb);
    void init
      .then((entry) =>
        sb.dispatch.apply(undefined, ['__init', '[]', 0, entry.derefInto()], { result: { promise: true, copy: true }, timeout: m.callTimeoutMs }).finally(() => entry.release()),
      )
      .then((reply) => {
        const r = JSON.parse(String(reply));
        if (!r.ok) {
          kill(sb, 'failed to load');
          send({ t: 'loaded', pid: m.pid, ok: false, error: r.error });
        } else send({ t: 'loaded', pid: m.pid, ok: true });
      })
      .catch((err) => {
        const error = isolate.isDisposed ? 'isolate died while loading (memory limit?)' : err.message;
        kill(sb, 'failed to load');
        send({ t: 'loaded', pid: m.pid, ok: false, error });
      });
  } catch (err) {
    try {
      if (!isolate.isDisposed) isolate.dispose();
    } catch {
      // ignore
    }
    send({ t: 'loaded', pid: m.pid, ok: false, error: (err).message });
  }
}

/** V8's own verdict that the code is an ES module rather than a script. */
const ES_MODULE_SYNTAX = /Unexpected token 'export'|Cannot use import statement outside a module|Cannot use 'import\.meta' outside a module/;

/**
 * Evaluate a plugin's entry: a CommonJS-style script (`module.exports = ...`)
 * wrapped in a function, or — when V8 says it is module syntax — a single-file ES
 * module compiled as one, whose namespace becomes the exports. A module that
 * imports anything is refused: an isolate has no files to import from.
 * Resolves to what the bootstrap's `__init` takes: the wrapper function or the namespace.
 */
async function evaluatePlugin(isolate, context, m) {
  let script = null;
  try {
    script = isolate.compileScriptSync(`(function (module, exports) {${m.code}\n})`, { filename: m.filename });
  } catch (err) {
    if (!ES_MODULE_SYNTAX.test((err).message)) throw err;
  }
  if (script) return script.runSync(context, { reference: true, timeout: m.callTimeoutMs });
  const mod = isolate.compileModuleSync(m.code, { filename: m.filename });
  const imports = mod.dependencySpecifiers;
  if (imports.length > 0) {
    mod.release();
    throw new Error(`the plugin imports ${imports.map((i) => JSON.stringify(i)).join(', ')}; an isolate plugin is one self-contained file (its only API is the global \`carapace\`) — bundle its code into the entry`);
  }
  mod.instantiateSync(context, () => {
    throw new Error('imports are not available in an isolate');
  });
  await mod.evaluate({ timeout: m.callTimeoutMs });
  return mod.namespace;
}

async function callHook(m) {
  const sb = sandboxes.get(m.pid);
  if (!sb) return send({ t: 'result', id: m.id, reply: JSON.stringify({ ok: false, error: 'plugin is not loaded' }) });
  sb.inFlight++;
  const cpuStart = sb.isolate.cpuTime;
  let timer;
  try {
    const timedOut = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`call timed out after ${sb.callTimeoutMs} ms`)), sb.callTimeoutMs);
    });
    const reply = await Promise.race([
      sb.dispatch.apply(undefined, [m.hook, JSON.stringify(m.args), m.id], { result: { promise: true, copy: true }, timeout: sb.callTimeoutMs }),
      timedOut,
    ]);
    if (typeof reply !== 'string') throw new Error('plugin returned a non-JSON reply');
    const cpu = sb.isolate.cpuTime - cpuStart;
    if (cpu > sb.cpuBudgetNs) {
      send({ t: 'result', id: m.id, reply: JSON.stringify({ ok: false, error: `call used ${Number(cpu / 1_000_000n)} ms of CPU (budget ${Number(sb.cpuBudgetNs / 1_000_000n)} ms)` }) });
      return kill(sb, 'cpu budget exceeded');
    }
    send({ t: 'result', id: m.id, reply });
  } catch (err) {
    const reason = sb.isolate.isDisposed && !sb.dead ? 'memory limit exceeded' : /timed out|execution timed out/i.test((err).message) ? 'call timeout' : 'isolate error';
    send({ t: 'result', id: m.id, reply: JSON.stringify({ ok: false, error: sb.dead ? 'plugin stopped' : `${reason}: ${(err).message}`, fatal: true }) });
    kill(sb, reason);
  } finally {
    clearTimeout(timer);
    sb.inFlight--;
  }
}

// Code that spins outside any call (a loop scheduled from a promise continuation)
// is caught here: an isolate burning most of a core between checks is stopped.
setInterval(() => {
  for (const sb of sandboxes.values()) {
    if (sb.dead || sb.isolate.isDisposed) {
      if (!sb.dead) kill(sb, 'memory limit exceeded');
      continue;
    }
    const cpu = sb.isolate.cpuTime;
    const used = cpu - sb.lastCpu;
    sb.lastCpu = cpu;
    if (sb.inFlight === 0 && used > BigInt(WATCHDOG_MS * 0.8 * 1_000_000)) kill(sb, 'cpu outside a call');
  }
}, WATCHDOG_MS).unref();

process.on('message', (raw) => {
  const m = raw;
  switch (m.t) {
    case 'load':
      return load(m);
    case 'call':
      void callHook(m);
      return;
    case 'capres': {
      const sb = sandboxes.get(m.pid);
      if (sb && sb.pending.delete(m.cid)) answer(sb, m.cid, m.reply);
      return;
    }
    case 'unload': {
      const sb = sandboxes.get(m.pid);
      if (sb) kill(sb, 'unloaded', false);
      return;
    }
    case 'gc':
      collectGarbage({ type: 'major', execution: 'sync', flavor: 'last-resort' });
      return;
  }
});
process.on('disconnect', () => process.exit(0));
send({ t: 'ready' });
