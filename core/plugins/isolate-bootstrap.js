// Runs inside each plugin's isolate, before the plugin, as a closure over one
// fire-and-forget host callback taking JSON strings only; answers come back
// through the dispatcher (`__capres`). It builds the
// `carapace` object (the one global a plugin gets), evaluates nothing else from
// the host, and returns the dispatcher the sandbox host calls hooks through.
// No Reference, ExternalCopy or host object is ever stored where plugin code can reach it.
const [$emit, $config] = [$0, $1];
const JSONparse = JSON.parse;
const JSONstringify = JSON.stringify;
const ErrorCtor = Error;
const handlers = new Map();
const waiting = new Map();
let nextCid = 1;

function call(method, args) {
  const cid = nextCid++;
  const text = JSONstringify(args);
  return new Promise((resolve, reject) => {
    waiting.set(cid, { resolve, reject });
    $emit('__cap', JSONstringify([cid, method, text]));
  });
}

function answer(cid, reply) {
  const w = waiting.get(cid);
  if (!w) return;
  waiting.delete(cid);
  if (reply.ok) return w.resolve(reply.value);
  const err = new ErrorCtor(reply.error);
  err.name = 'CapabilityError';
  w.reject(err);
}
const fire = (method, args) => {
  $emit(method, JSONstringify(args));
};
const freeze = (o) => {
  for (const v of Object.values(o)) if (v && typeof v === 'object') freeze(v);
  return Object.freeze(o);
};

// Sockets: events arrive through the `socket` hook in batches, in order; those that
// come before the plugin has attached its handlers are kept until it does.
const sockets = new Map();
function socketEntry(id) {
  let s = sockets.get(id);
  if (!s) {
    s = { data: null, close: null, early: [], closed: null };
    sockets.set(id, s);
  }
  return s;
}
function socketEvent(id, ev) {
  const s = socketEntry(id);
  if ('close' in ev) {
    s.closed = ev.close;
    if (s.close) {
      sockets.delete(id);
      s.close(ev.close);
    }
    return;
  }
  if (s.data) s.data(ev.data);
  else s.early.push(ev.data);
}
function socketApi(id) {
  const s = socketEntry(id);
  return freeze({
    onData(handler) {
      if (typeof handler !== 'function') throw new TypeError('handler must be a function');
      s.data = handler;
      for (const d of s.early.splice(0)) handler(d);
    },
    onClose(handler) {
      if (typeof handler !== 'function') throw new TypeError('handler must be a function');
      s.close = handler;
      if (s.closed) {
        sockets.delete(id);
        handler(s.closed);
      }
    },
    write: (data) => call('net.write', [id, String(data)]).then(() => undefined),
    close: (code) => call('net.close', [id, code === undefined ? null : code]).then(() => undefined),
    startTls: () => call('net.startTls', [id]).then(() => undefined),
  });
}

const carapace = freeze({
  net: {
    fetch: (url, init) => call('net.fetch', [url, init ?? {}]),
    websocket: async (url, opts) => socketApi(await call('net.websocket', [url, opts ?? {}])),
    connect: async (host, port, opts) => socketApi(await call('net.connect', [host, port, opts ?? {}])),
  },
  fs: {
    read: (path) => call('fs.read', [path]),
    write: (path, data) => call('fs.write', [path, data]),
    list: (dir) => call('fs.list', [dir]),
  },
  kv: {
    get: (key) => call('kv.get', [key]),
    set: (key, value) => call('kv.set', [key, value === undefined ? null : value]),
    delete: (key) => call('kv.delete', [key]),
    list: (prefix) => call('kv.list', [prefix ?? '']),
  },
  bus: {
    publish: (topic, msg, opts) => call('bus.publish', [topic, msg, opts ?? {}]),
    subscribe: async (pattern, handler) => {
      if (typeof handler !== 'function') throw new TypeError('handler must be a function');
      const id = await call('bus.subscribe', [pattern]);
      handlers.set('bus:' + id, handler);
      return freeze({ unsubscribe: async () => { handlers.delete('bus:' + id); await call('bus.unsubscribe', [id]); } });
    },
  },
  timers: {
    sleep: (ms) => call('timers.sleep', [ms]),
    interval: async (ms, handler) => {
      if (typeof handler !== 'function') throw new TypeError('handler must be a function');
      const id = await call('timers.interval', [ms]);
      handlers.set('interval:' + id, handler);
      return freeze({ cancel: async () => { handlers.delete('interval:' + id); await call('timers.cancel', [id]); } });
    },
  },
  log: {
    info: (msg, fields) => fire('log.info', [String(msg), fields ?? {}]),
    warn: (msg, fields) => fire('log.warn', [String(msg), fields ?? {}]),
    error: (msg, fields) => fire('log.error', [String(msg), fields ?? {}]),
  },
  config: JSONparse($config),
});
Object.defineProperty(globalThis, 'carapace', { value: carapace, writable: false, enumerable: true, configurable: false });

const module = { exports: {} };
let exportsReady = false;

function errorText(e) {
  if (e && typeof e === 'object' && typeof e.message === 'string') return String(e.name || 'Error') + ': ' + e.message;
  return 'thrown: ' + String(e);
}

// Retry hints the delivery queue needs, type-checked here and again in the kernel.
function errorInfo(e) {
  const out = {};
  if (!e || typeof e !== 'object') return out;
  if (typeof e.retryable === 'boolean') out.retryable = e.retryable;
  if (typeof e.retryAfterMs === 'number') out.retryAfterMs = e.retryAfterMs;
  if (typeof e.status === 'number') out.status = e.status;
  return out;
}

function toolList() {
  const tools = module.exports.tools;
  return Array.isArray(tools) ? tools : [];
}

async function run(hook, args, callId) {
  const x = module.exports;
  switch (hook) {
    case 'describe':
      return {
        hooks: Object.keys(x).filter((k) => typeof x[k] === 'function' || k === 'tools'),
        tools: toolList().map((t) => ({ name: String(t.name), description: String(t.description ?? ''), input: t.input ?? { type: 'object' } })),
      };
    case 'tool': {
      const tool = toolList().find((t) => t && t.name === args[0]);
      if (!tool || typeof tool.run !== 'function') throw new ErrorCtor('no such tool: ' + args[0]);
      const r = await tool.run(args[1], args[2]);
      return typeof r === 'string' ? { content: r } : r;
    }
    case 'complete':
      return x.complete(args[0], (event) => fire('__event', [callId, event]));
    case 'socket': {
      const events = args[1] && Array.isArray(args[1].events) ? args[1].events : [];
      for (const ev of events) {
        try {
          socketEvent(args[0], ev);
        } catch (e) {
          fire('log.error', ['socket handler threw: ' + errorText(e), {}]);
        }
      }
      return null;
    }
    case 'bus':
    case 'interval': {
      const h = handlers.get(hook + ':' + args[0]);
      if (h) await h(args[1]);
      return null;
    }
    default:
      if (!['start', 'send', 'stop', 'models', 'index', 'search', 'forget'].includes(hook) || typeof x[hook] !== 'function') {
        throw new ErrorCtor('plugin has no hook ' + hook);
      }
      return x[hook](...args);
  }
}

// The dispatcher: JSON in, JSON out; a plugin's own exception becomes a string here.
// `__init` runs the plugin's wrapped script once with its module object.
return async function dispatch(hook, argsJson, callId, init) {
  try {
    if (hook === '__capres') {
      answer(callId, JSONparse(argsJson));
      return '';
    }
    if (hook === '__init') {
      if (exportsReady) throw new ErrorCtor('already initialised');
      exportsReady = true;
      if (typeof init === 'function') init.call(undefined, module, module.exports);
      else {
        // An ES module's namespace: its named exports (or a default export object) are the hooks.
        const x = init.default && typeof init.default === 'object' ? init.default : init;
        for (const k of Object.keys(x)) module.exports[k] = x[k];
      }
      return JSONstringify({ ok: true, value: null });
    }
    const value = await run(hook, JSONparse(argsJson), callId);
    return JSONstringify({ ok: true, value: value === undefined ? null : value });
  } catch (e) {
    let text;
    let info = {};
    try {
      text = errorText(e);
      info = errorInfo(e);
    } catch {
      text = 'thrown: (unprintable)';
    }
    return JSONstringify({ ok: false, error: text, info });
  }
};
