// The `bus` service: the /ws endpoint (protocol.md), the broker, the method
// registry and the event fan-out. Other services reach them with
// `registry.get<BusService>('bus')` and register their own methods there.
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyRequest, FastifyReply } from 'fastify';
import websocketPlugin from '@fastify/websocket';
import type { WebSocket, RawData } from 'ws';
import { CarapaceError, toWireError } from '../errors.ts';
import type { KernelContext, Service, ServiceFactory, ServiceRegistry } from '../kernel.ts';
import type { BusPort, Caller, EventFanout, TopicAcl } from './types.ts';
import { createBroker, type LocalBroker } from './broker.ts';
import { createDeviceStore, hasScope, type DeviceStore } from './devices.ts';
import { createMethodRegistry, type BusMethods } from './methods.ts';
import { verifyConnect } from './handshake.ts';
import { eventFrameJson, FrameError, parseFrameText, resErr, resOk, salvageId, check, validateReqFrame } from './frames.ts';
import { DEFAULT_LIMITS, FailureLimiter, normalizeIp, type BusLimits, type ConfigurableLimit } from './limits.ts';
import { registerBuiltins } from './builtins.ts';

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');

// A broker message reaches every matching subscriber as the same object; its text
// is computed at the first socket it goes to and reused for the others. (The broker
// never changes a message after publishing it.)
const messageJson = new WeakMap<object, string>();
// Once dropped, a slow consumer gets nothing more; what is already queued (at most
// the send buffer) and then the 1013 close reach it if it reads again within this.
const SLOW_CONSUMER_GRACE_MS = 5_000;
function payloadJson(event: string, payload: unknown): string {
  if (event !== 'bus.message' || payload === null || typeof payload !== 'object') return JSON.stringify(payload ?? {});
  let json = messageJson.get(payload);
  if (json === undefined) messageJson.set(payload, (json = JSON.stringify(payload)));
  return json;
}

export interface BusService extends Service {
  readonly name: 'bus';
  readonly broker: LocalBroker;
  readonly methods: BusMethods;
  readonly fanout: EventFanout;
  readonly devices: DeviceStore;
  /** Close every live socket of a device (after revocation). Returns how many were closed. */
  disconnectDevice(deviceId: string, reason: string): number;
}

/**
 * What a device may do on the topic bus, from its role and scopes (never from what it asks for):
 *  - operator.read  → subscribe to every topic (`>`): operators are the owner's own screens;
 *  - operator.write → publish under `device.>` only; effects on agents and channels go through
 *                     methods (chat.send…), so a device can never pose as a channel or a service;
 *  - operator.admin → publish anywhere (replay, debugging);
 *  - node.invoke    → publish and subscribe under `node.<deviceId>.>`.
 * Every message is stamped `from: device:<id>` by the broker.
 */
export function deviceAcl(deviceId: string, scopes: readonly string[]): TopicAcl {
  const acl: TopicAcl = { publish: [], subscribe: [] };
  if (hasScope(scopes, 'operator.read')) acl.subscribe.push('>');
  if (scopes.includes('operator.admin')) acl.publish.push('>');
  else if (hasScope(scopes, 'operator.write')) acl.publish.push('device.>');
  if (scopes.includes('node.invoke')) {
    acl.publish.push(`node.${deviceId}.>`);
    acl.subscribe.push(`node.${deviceId}.>`);
  }
  return acl;
}

interface Conn {
  ws: WebSocket;
  ip: string;
  origin: string | undefined;
  nonce: string;
  nonceUnused: boolean;
  authed: boolean;
  closed: boolean;
  deviceId: string | null;
  role: 'operator' | 'node' | null;
  scopes: string[];
  seq: number;
  inflight: number;
  rejected: number;
  port: BusPort | null;
  subscriptions: Map<string, () => void>;
  abort: AbortController;
  timer: NodeJS.Timeout | null;
  caller: Caller | null;
  /** Frames sent in this turn of the event loop are held back and written together. */
  corked: boolean;
}

type CorkableSocket = { cork(): void; uncork(): void; destroyed: boolean };

/**
 * The TCP socket under a ws WebSocket. ws writes each frame with its own syscall;
 * corking the socket for the rest of the event-loop turn lets every frame queued
 * meanwhile (the res, the events of a fan-out, answers to a burst) leave in one writev.
 */
function rawSocket(ws: WebSocket): CorkableSocket | null {
  const s = (ws as unknown as { _socket?: CorkableSocket })._socket;
  return s && typeof s.cork === 'function' ? s : null;
}

function uncork(c: Conn): void {
  c.corked = false;
  const s = rawSocket(c.ws);
  if (s && !s.destroyed) s.uncork();
}

export interface BusOptions {
  limits?: Partial<BusLimits>;
}

/** The bus service factory; `createBusService({limits})` lets tests shorten the handshake deadline or heartbeat. */
export function createBusService(options: BusOptions = {}): ServiceFactory {
  return (ctx, registry) => buildBus(ctx, registry, options);
}

export const busService: ServiceFactory = createBusService();

function buildBus(ctx: KernelContext, registry: ServiceRegistry, options: BusOptions): BusService {
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  // Read at each use, so a config change applies to the sockets already open; a test's option wins.
  const configured = (key: ConfigurableLimit): number => options.limits?.[key] ?? ctx.config.current.gateway.limits[key];
  const log = ctx.log.child({ service: 'bus' });
  const broker = createBroker({ log, clock: ctx.clock });
  const devices = createDeviceStore({ db: ctx.db, audit: ctx.audit, clock: ctx.clock, owner: ctx.identity.owner, startedAt: ctx.startedAt });
  const methods = createMethodRegistry({ db: ctx.db, clock: ctx.clock });
  const limiter = new FailureLimiter(limits, ctx.clock);
  const conns = new Set<Conn>();
  const byCaller = new WeakMap<Caller, Conn>();
  const unauthByIp = new Map<string, number>();
  let heartbeat: NodeJS.Timeout | null = null;
  let stopping = false;
  let handshakeFailures = 0;

  const sourcesOf = (c: { ip: string; origin: string | undefined }) => (c.origin ? [`ip:${c.ip}`, `origin:${c.origin}`] : [`ip:${c.ip}`]);

  function setReceiverMax(ws: WebSocket, bytes: number): void {
    // ws fixes maxPayload per server; its receiver reads the limit per socket, so
    // lifting it after the handshake keeps unauthenticated sockets at 64 KiB.
    const receiver = (ws as unknown as { _receiver?: { _maxPayload?: number } })._receiver;
    if (receiver && typeof receiver._maxPayload === 'number') receiver._maxPayload = bytes;
  }

  function send(c: Conn, text: string): void {
    if (c.closed || c.ws.readyState !== c.ws.OPEN) return;
    if (c.ws.bufferedAmount > configured('sendBufferBytes')) {
      // A consumer that does not read must not grow our memory without bound.
      closeConn(c, 1013, 'slow consumer', SLOW_CONSUMER_GRACE_MS);
      log.warn('dropped a slow bus consumer', { deviceId: c.deviceId, ip: c.ip, buffered: c.ws.bufferedAmount });
      return;
    }
    if (!c.corked) {
      const s = rawSocket(c.ws);
      if (s) {
        s.cork();
        c.corked = true;
        setImmediate(uncork, c);
      }
    }
    c.ws.send(text);
  }

  function emit(c: Conn, event: string, payload: unknown): void {
    if (c.closed) return;
    send(c, eventFrameJson(event, payloadJson(event, payload), c.seq++));
  }

  function emitJson(c: Conn, event: string, json: string): void {
    if (c.closed) return;
    send(c, eventFrameJson(event, json, c.seq++));
  }

  function closeConn(c: Conn, code: number, reason: string, graceMs = 250): void {
    if (c.closed) return;
    c.closed = true;
    if (c.timer) clearTimeout(c.timer);
    try {
      c.ws.close(code, reason);
    } catch {
      // already closing
    }
    // A peer that does not read would keep the closing handshake open for 30 s.
    const t = setTimeout(() => c.ws.terminate(), graceMs);
    t.unref();
  }

  function onGone(c: Conn): void {
    c.closed = true;
    if (c.timer) clearTimeout(c.timer);
    if (!conns.delete(c)) return;
    if (!c.authed) {
      const n = (unauthByIp.get(c.ip) ?? 1) - 1;
      if (n <= 0) unauthByIp.delete(c.ip);
      else unauthByIp.set(c.ip, n);
    } else {
      announcePresence(c);
    }
    c.abort.abort();
    for (const off of c.subscriptions.values()) off();
    c.subscriptions.clear();
    c.port?.close();
  }

  function failHandshake(c: Conn, id: string, err: CarapaceError | { code: string; message: string; details?: Record<string, unknown> }, deviceId?: string): void {
    handshakeFailures++;
    limiter.fail(deviceId ? [...sourcesOf(c), `device:${deviceId}`] : sourcesOf(c));
    send(c, resErr(id, err instanceof CarapaceError ? err.toWire() : err));
    closeConn(c, 1008, 'handshake failed');
  }

  function reject(c: Conn, id: string, err: CarapaceError): void {
    send(c, resErr(id, err.toWire()));
    if (++c.rejected >= limits.maxRejectedFrames) closeConn(c, 1008, 'too many rejected frames');
  }

  const fanout: EventFanout = {
    broadcast(event, payload, scope) {
      let json: string | null = null;
      for (const c of conns) if (c.authed && c.role === 'operator' && hasScope(c.scopes, scope)) emitJson(c, event, (json ??= JSON.stringify(payload ?? {})));
    },
  };

  /** protocol.md `presence`: a device's sockets came or went; `online` while it has any. */
  function announcePresence(c: Conn): void {
    let connections = 0;
    for (const o of conns) if (o.authed && !o.closed && o.deviceId === c.deviceId) connections++;
    fanout.broadcast('presence', { deviceId: c.deviceId, role: c.role, online: connections > 0, connections, ts: ctx.clock.now() }, 'operator.read');
  }

  function handshake(c: Conn, id: string, params: unknown): void {
    // A device is counted against only for failures it proved its key for (below), so
    // naming someone else's device id cannot lock that device out; it can only meet
    // a lockout the device earned itself.
    const claimed = (params as { device?: { id?: unknown } } | null)?.device?.id;
    const deviceWait = typeof claimed === 'string' ? limiter.lockedFor([`device:${claimed}`]) : 0;
    const wait = Math.max(limiter.lockedFor(sourcesOf(c)), deviceWait);
    if (wait > 0) {
      // Not counted again: a locked-out source cannot extend its own lockout by knocking.
      const from = wait === deviceWait ? 'this device' : 'this address';
      send(c, resErr(id, new CarapaceError('RATE_LIMITED', `too many failed handshakes from ${from}; try again later`, { retryAfterMs: wait }).toWire()));
      closeConn(c, 1008, 'rate limited');
      return;
    }
    const unused = c.nonceUnused;
    c.nonceUnused = false;
    const result = verifyConnect(params, c.nonce, unused, {
      gateway: ctx.identity.gateway,
      devices,
      clock: ctx.clock,
      version: ctx.version,
      policy: () => ({ maxPayload: ctx.config.current.gateway.maxPayload, heartbeatMs: limits.heartbeatMs }),
    });
    if (!result.ok) {
      if (result.pairing?.fresh) {
        const { requestId, code, deviceId, role, scopes, client, expiresAt } = result.pairing;
        fanout.broadcast('device.pairing.requested', { requestId, code, deviceId, role, scopes, client, expiresAt }, 'operator.pairing');
      }
      log.info('bus handshake refused', { ip: c.ip, origin: c.origin, code: result.error.code, reason: result.error.details?.reason });
      failHandshake(c, id, result.error, result.deviceId);
      return;
    }
    if (c.timer) clearTimeout(c.timer);
    c.timer = null;
    c.authed = true;
    const n = (unauthByIp.get(c.ip) ?? 1) - 1;
    if (n <= 0) unauthByIp.delete(c.ip);
    else unauthByIp.set(c.ip, n);
    c.deviceId = result.device.id;
    c.role = result.role;
    c.scopes = result.scopes;
    c.port = broker.port(`device:${result.device.id}`, deviceAcl(result.device.id, result.scopes));
    c.caller = {
      deviceId: result.device.id,
      role: result.role,
      scopes: result.scopes,
      emit: (event, payload) => emit(c, event, payload),
      signal: c.abort.signal,
    };
    byCaller.set(c.caller, c);
    setReceiverMax(c.ws, ctx.config.current.gateway.maxPayload);
    devices.touch(result.device.id);
    send(c, resOk(id, result.hello));
    announcePresence(c);
    log.info('bus device connected', { deviceId: result.device.id, role: result.role, ip: c.ip, viaInvite: result.viaInvite });
  }

  async function dispatch(c: Conn, id: string, method: string, params: Record<string, unknown>): Promise<void> {
    c.inflight++;
    try {
      const payload = await methods.call(method, params, c.caller!);
      send(c, resOk(id, payload));
    } catch (err) {
      if (!(err instanceof CarapaceError)) log.error('bus method failed', { method, deviceId: c.deviceId, err });
      const wire = toWireError(err);
      if (err instanceof CarapaceError && (err.code === 'FORBIDDEN' || (err.code === 'INVALID_REQUEST' && (err.details?.pointer as string | undefined)?.startsWith('/params')))) {
        reject(c, id, err);
      } else send(c, resErr(id, wire));
    } finally {
      c.inflight--;
    }
  }

  function onMessage(c: Conn, data: RawData, isBinary: boolean): void {
    if (c.closed) return;
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    if (!c.authed && buf.length > limits.preAuthMaxPayload) {
      failHandshake(c, '', new CarapaceError('PAYLOAD_TOO_LARGE', `frames before the handshake are limited to ${limits.preAuthMaxPayload} bytes`, { limit: limits.preAuthMaxPayload }));
      return;
    }
    let value: unknown;
    try {
      if (isBinary) throw new CarapaceError('INVALID_REQUEST', 'frames are text (one JSON object each)', { pointer: '' });
      value = parseFrameText(buf);
      check(validateReqFrame, value);
    } catch (err) {
      const e = err instanceof CarapaceError ? err : new CarapaceError('INVALID_REQUEST', 'malformed frame', { pointer: '' });
      const id = (err instanceof FrameError ? err.frameId : salvageId(value)) ?? '';
      if (!c.authed) failHandshake(c, id, e);
      else reject(c, id, e);
      return;
    }
    const frame = value as { id: string; method: string; params?: Record<string, unknown> };
    if (!c.authed) {
      if (frame.method !== 'connect') {
        failHandshake(c, frame.id, new CarapaceError('INVALID_REQUEST', 'the first request must be connect', { pointer: '/method' }));
        return;
      }
      handshake(c, frame.id, frame.params);
      return;
    }
    if (frame.method === 'connect') {
      reject(c, frame.id, new CarapaceError('INVALID_REQUEST', 'already connected', { pointer: '/method' }));
      return;
    }
    if (!methods.has(frame.method)) {
      reject(c, frame.id, new CarapaceError('NOT_FOUND', `unknown method ${frame.method}`, { method: frame.method }));
      return;
    }
    if (c.inflight >= configured('maxInflight')) {
      reject(c, frame.id, new CarapaceError('RATE_LIMITED', `at most ${configured('maxInflight')} requests may be in flight per connection`, { retryAfterMs: 100 }));
      return;
    }
    void dispatch(c, frame.id, frame.method, frame.params ?? {});
  }

  function onSocket(ws: WebSocket, req: FastifyRequest): void {
    const c: Conn = {
      ws,
      ip: normalizeIp(req.socket.remoteAddress),
      origin: typeof req.headers.origin === 'string' ? req.headers.origin : undefined,
      nonce: b64(randomBytes(32)),
      nonceUnused: true,
      authed: false,
      closed: false,
      deviceId: null,
      role: null,
      scopes: [],
      seq: 0,
      inflight: 0,
      rejected: 0,
      port: null,
      subscriptions: new Map(),
      abort: new AbortController(),
      timer: null,
      caller: null,
      corked: false,
    };
    conns.add(c);
    unauthByIp.set(c.ip, (unauthByIp.get(c.ip) ?? 0) + 1);
    setReceiverMax(ws, limits.preAuthMaxPayload);
    ws.on('message', (data, isBinary) => onMessage(c, data, isBinary));
    ws.on('close', () => onGone(c));
    ws.on('error', () => onGone(c));
    c.timer = setTimeout(() => {
      if (c.authed || c.closed) return;
      handshakeFailures++;
      limiter.fail(sourcesOf(c));
      closeConn(c, 1008, 'handshake timeout');
    }, limits.handshakeTimeoutMs);
    c.timer.unref();
    emit(c, 'connect.challenge', { nonce: c.nonce, ts: ctx.clock.now(), gatewayId: ctx.identity.gateway.id, gatewayPublicKey: ctx.identity.gateway.publicKeyB64 });
  }

  /** Own origin: Origin's host is the Host header and names this machine by address or `localhost` (a rebinding DNS name never matches). */
  function originAllowed(origin: string | undefined, host: string | undefined): boolean {
    if (origin === undefined) return true;
    let o: URL;
    try {
      o = new URL(origin);
    } catch {
      return false;
    }
    const allowed = ctx.config.current.gateway.allowedOrigins ?? [];
    if (allowed.some((a) => a === origin || safeOrigin(a) === o.origin)) return true;
    const publicUrl = (ctx.config.current.gateway as { publicUrl?: string | null }).publicUrl;
    if (publicUrl && safeOrigin(publicUrl) === o.origin) return true;
    if (o.protocol !== 'http:' && o.protocol !== 'https:') return false;
    if (!host || o.host.toLowerCase() !== host.toLowerCase()) return false;
    const h = o.hostname.replace(/^\[|\]$/g, '');
    return h === 'localhost' || /^[0-9.]+$/.test(h) || h.includes(':');
  }

  function onUpgrade(req: FastifyRequest, reply: FastifyReply, done: () => void): void {
    if (stopping) return void reply.code(503).send({ error: 'gateway is stopping' });
    if (conns.size >= configured('maxSockets')) return void reply.code(503).send({ error: 'too many connections' });
    const origin = req.headers.origin;
    if (!originAllowed(typeof origin === 'string' ? origin : undefined, req.headers.host)) {
      log.warn('refused a bus upgrade from a foreign origin', { origin, ip: req.socket.remoteAddress });
      return void reply.code(403).send({ error: 'origin not allowed' });
    }
    const ip = normalizeIp(req.socket.remoteAddress);
    if ((unauthByIp.get(ip) ?? 0) >= limits.maxUnauthenticatedPerIp) {
      return void reply.code(429).send({ error: 'too many unauthenticated connections from this address' });
    }
    done();
  }

  const service: BusService = {
    name: 'bus',
    broker,
    methods,
    fanout,
    devices,
    disconnectDevice(deviceId, reason) {
      let n = 0;
      for (const c of conns) {
        if (c.deviceId === deviceId) {
          closeConn(c, 1008, reason);
          onGone(c);
          n++;
        }
      }
      return n;
    },
    async routes(app: FastifyInstance) {
      // UTF-8 is checked by our fatal decoder (frames.ts) so invalid text gets an INVALID_REQUEST answer, not a bare close.
      await app.register(websocketPlugin, {
        options: { maxPayload: Math.max(ctx.config.current.gateway.maxPayload, limits.preAuthMaxPayload), perMessageDeflate: false, clientTracking: true, skipUTF8Validation: true },
      });
      app.get('/ws', { websocket: true, onRequest: onUpgrade }, (socket, req) => onSocket(socket, req));
    },
    start() {
      heartbeat = setInterval(() => {
        limiter.prune();
        const ts = ctx.clock.now();
        for (const c of conns) if (c.authed) emit(c, 'tick', { ts });
      }, limits.heartbeatMs);
      heartbeat.unref();
    },
    stop() {
      stopping = true;
      if (heartbeat) clearInterval(heartbeat);
      for (const c of [...conns]) {
        closeConn(c, 1001, 'gateway stopping');
        onGone(c);
      }
      broker.close();
    },
    status() {
      let authed = 0;
      const connected = new Set<string>();
      for (const c of conns) {
        if (c.authed) {
          authed++;
          connected.add(c.deviceId!);
        }
      }
      return {
        sockets: conns.size,
        authenticated: authed,
        devicesConnected: connected.size,
        handshakeFailures,
        lockedSources: limiter.lockedSources(),
        broker: broker.stats(),
      };
    },
  };

  registerBuiltins({
    ctx,
    registry,
    methods,
    devices,
    fanout,
    disconnectDevice: (id, reason) => service.disconnectDevice(id, reason),
    onlineDevices() {
      const on = new Set<string>();
      for (const c of conns) if (c.authed && !c.closed) on.add(c.deviceId!);
      return on;
    },
    connectionOf(caller) {
      const c = byCaller.get(caller);
      if (!c || c.closed || !c.port) throw new CarapaceError('UNAVAILABLE', 'connection is gone', { retryable: true });
      return { port: c.port, subscriptions: c.subscriptions };
    },
  });
  return service;
}

function safeOrigin(url: string): string | null {
  try {
    return new URL(url).origin;
  } catch {
    return null;
  }
}
