// A small typed client of the paired bus (protocol.md), shared by the CLI, the
// Control UI and the tests. No Node-only APIs: the WebSocket constructor and the
// ed25519 sign/verify functions are injected (core/client/node.ts wires Node's).
import { CarapaceError, type ErrorCode } from '../errors.ts';
import { connectPayload, helloPayload } from '../bus/signing.ts';
import { matches } from '../bus/topics.ts';
import type { Hello } from '../bus/handshake.ts';
import type { BusMessage } from '../bus/types.ts';

export interface Signer {
  deviceId: string;
  /** base64 of the raw 32-byte public key */
  publicKey: string;
  /** base64 detached ed25519 signature of the UTF-8 bytes of `message` */
  sign(message: string): string | Promise<string>;
}

export type Verifier = (message: string, signatureB64: string, publicKeyB64: string) => boolean | Promise<boolean>;

export interface GatewayPin {
  id: string;
  publicKey: string;
}

export type { Hello, BusMessage };

interface WsLike {
  readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export type WebSocketCtor = new (url: string, protocols?: string | string[], options?: unknown) => WsLike;

export interface ClientOptions {
  /** ws://host:port/ws */
  url: string;
  signer: Signer;
  verify: Verifier;
  role?: 'operator' | 'node';
  scopes: string[];
  client?: { name: string; version: string; platform: string };
  /** The gateway key this device trusts. A challenge or hello from any other key is refused. */
  pin?: GatewayPin | null;
  /** Called once when connecting without a pin succeeds (trust on first use): store it. */
  onPin?(pin: GatewayPin): void;
  /** A one-time invite code (`carapace devices invite`). */
  pairingCode?: string;
  WebSocket?: WebSocketCtor;
  /** Third constructor argument for implementations that take one (the `ws` package: headers, e.g. Origin). */
  wsOptions?: unknown;
  /** Reconnect with backoff after an established connection drops (default true). */
  reconnect?: boolean;
  backoff?: { minMs: number; maxMs: number };
  requestTimeoutMs?: number;
  handshakeTimeoutMs?: number;
  now?: () => number;
}

type Handler = (payload: unknown, event: string) => void;

interface Pending {
  resolve(v: unknown): void;
  reject(e: unknown): void;
  /** Date.now() deadline, 0 for none; checked by one sweep timer, not a timer per request. */
  deadline: number;
  method: string;
}

const OPEN = 1;

function wireError(e: { code?: unknown; message?: unknown; details?: unknown } | undefined): CarapaceError {
  const err = new CarapaceError((typeof e?.code === 'string' ? e.code : 'INTERNAL') as ErrorCode, typeof e?.message === 'string' ? e.message : 'request failed', (e?.details ?? undefined) as Record<string, unknown> | undefined);
  return err;
}

// Errors after which trying again cannot help without a person acting.
const PERMANENT = new Set(['UNAUTHORIZED', 'FORBIDDEN', 'UNSUPPORTED_PROTOCOL', 'PAIRING_REQUIRED', 'INVALID_REQUEST']);

export class BusClient {
  readonly #opts: ClientOptions;
  #ws: WsLike | null = null;
  #pin: GatewayPin | null;
  #hello: Hello | null = null;
  #nextId = 1;
  #pending = new Map<string, Pending>();
  #handlers = new Map<string, Set<Handler>>();
  #subs = new Map<string, Set<(m: BusMessage) => void>>();
  #closed = false;
  #attempt = 0;
  #reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  #sweep: ReturnType<typeof setInterval> | null = null;

  constructor(opts: ClientOptions) {
    this.#opts = opts;
    this.#pin = opts.pin ?? null;
  }

  get hello(): Hello | null {
    return this.#hello;
  }

  get connected(): boolean {
    return this.#hello !== null && this.#ws?.readyState === OPEN;
  }

  /** Open the socket and complete the handshake; resolves with the verified hello. */
  connect(): Promise<Hello> {
    this.#closed = false;
    return this.#open();
  }

  #open(): Promise<Hello> {
    const o = this.#opts;
    const Ctor = o.WebSocket ?? (globalThis as unknown as { WebSocket?: WebSocketCtor }).WebSocket;
    if (!Ctor) throw new Error('no WebSocket implementation: pass one as options.WebSocket');
    return new Promise<Hello>((resolve, reject) => {
      let settled = false;
      const ws = o.wsOptions === undefined ? new Ctor(o.url) : new Ctor(o.url, undefined, o.wsOptions);
      this.#ws = ws;
      const fail = (err: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        try {
          ws.close(1000);
        } catch {
          // not open yet
        }
        reject(err);
      };
      const deadline = setTimeout(() => fail(new CarapaceError('UNAVAILABLE', 'handshake timed out', { retryable: true })), o.handshakeTimeoutMs ?? 15_000);
      type Challenge = { nonce: string; gatewayId: string; gatewayPublicKey: string };
      let challenge = null as Challenge | null;
      const connectId = 'connect';
      let answered = false;

      ws.onerror = () => {
        // onclose follows with the reason
      };
      ws.onclose = (ev) => {
        if (!settled) fail(new CarapaceError('UNAVAILABLE', `connection closed during the handshake (${ev.code}${ev.reason ? ' ' + ev.reason : ''})`, { retryable: true, closeCode: ev.code }));
        else if (this.#ws === ws) this.#dropped(ev.code);
      };
      ws.onmessage = (ev) => {
        let frame: Record<string, unknown>;
        try {
          frame = JSON.parse(String(ev.data)) as Record<string, unknown>;
        } catch {
          return fail(new CarapaceError('INVALID_REQUEST', 'the gateway sent a frame that is not JSON'));
        }
        if (settled || answered) return this.#onFrame(frame);
        if (!challenge) {
          if (frame.type !== 'event' || frame.event !== 'connect.challenge') return fail(new CarapaceError('INVALID_REQUEST', 'expected connect.challenge'));
          challenge = frame.payload as Challenge | null;
          if (!challenge || typeof challenge.nonce !== 'string' || typeof challenge.gatewayId !== 'string' || typeof challenge.gatewayPublicKey !== 'string') {
            return fail(new CarapaceError('INVALID_REQUEST', 'malformed connect.challenge'));
          }
          if (this.#pin && (this.#pin.publicKey !== challenge.gatewayPublicKey || this.#pin.id !== challenge.gatewayId)) {
            return fail(new CarapaceError('UNAUTHORIZED', 'the gateway key differs from the pinned key: refusing to connect', { reason: 'gateway-key' }));
          }
          void this.#sendConnect(ws, connectId, challenge).catch(fail);
          return;
        }
        if (frame.type !== 'res' || frame.id !== connectId) return fail(new CarapaceError('INVALID_REQUEST', 'expected the connect response'));
        if (frame.ok !== true) return fail(wireError(frame.error as Record<string, unknown>));
        answered = true;
        void this.#checkHello(frame.payload as Hello, challenge).then(
          (hello) => {
            if (settled) return;
            settled = true;
            clearTimeout(deadline);
            this.#hello = hello;
            this.#attempt = 0;
            resolve(hello);
          },
          fail,
        );
      };
    });
  }

  async #sendConnect(ws: WsLike, id: string, ch: { nonce: string; gatewayId: string }): Promise<void> {
    const o = this.#opts;
    const role = o.role ?? 'operator';
    const scopes = [...o.scopes].sort();
    const signedAt = (o.now ?? Date.now)();
    const signature = await o.signer.sign(connectPayload({ gatewayId: ch.gatewayId, deviceId: o.signer.deviceId, role, scopes, nonce: ch.nonce, signedAt }));
    const params: Record<string, unknown> = {
      protocol: 1,
      client: o.client ?? { name: 'carapace-client', version: '1', platform: 'unknown' },
      role,
      scopes,
      device: { id: o.signer.deviceId, publicKey: o.signer.publicKey, nonce: ch.nonce, signedAt, signature },
    };
    if (o.pairingCode) params.pairingCode = o.pairingCode;
    ws.send(JSON.stringify({ type: 'req', id, method: 'connect', params }));
  }

  async #checkHello(hello: Hello, ch: { nonce: string; gatewayId: string; gatewayPublicKey: string }): Promise<Hello> {
    const key = this.#pin?.publicKey ?? ch.gatewayPublicKey;
    const id = this.#pin?.id ?? ch.gatewayId;
    if (!hello || hello.type !== 'hello' || hello.gateway?.publicKey !== key || hello.gateway?.id !== id) {
      throw new CarapaceError('UNAUTHORIZED', 'the hello names a different gateway key: refusing', { reason: 'gateway-key' });
    }
    if (hello.device?.id !== this.#opts.signer.deviceId) throw new CarapaceError('UNAUTHORIZED', 'the hello is for another device', { reason: 'device' });
    const ok = await this.#opts.verify(helloPayload({ gatewayId: id, deviceId: hello.device.id, nonce: ch.nonce }), hello.signature, key);
    if (!ok) throw new CarapaceError('UNAUTHORIZED', 'the gateway hello signature does not verify: refusing', { reason: 'gateway-signature' });
    if (!this.#pin) {
      this.#pin = { id, publicKey: key };
      this.#opts.onPin?.(this.#pin);
    }
    return hello;
  }

  #onFrame(frame: Record<string, unknown>): void {
    if (frame.type === 'res' && typeof frame.id === 'string') {
      const p = this.#pending.get(frame.id);
      if (!p) return;
      this.#pending.delete(frame.id);
      if (frame.ok === true) p.resolve(frame.payload);
      else p.reject(wireError(frame.error as Record<string, unknown>));
      return;
    }
    if (frame.type === 'event' && typeof frame.event === 'string') {
      const name = frame.event;
      if (name === 'bus.message') {
        const msg = frame.payload as BusMessage;
        for (const [pattern, hs] of this.#subs) if (matches(pattern, msg.topic)) for (const h of hs) h(msg);
      }
      for (const key of [name, '*']) for (const h of this.#handlers.get(key) ?? []) h(frame.payload, name);
    }
  }

  #dropped(code: number): void {
    this.#hello = null;
    for (const [id, p] of this.#pending) {
      p.reject(new CarapaceError('UNAVAILABLE', `connection lost (${code})`, { retryable: true, closeCode: code }));
      this.#pending.delete(id);
    }
    this.#emitLocal('client.disconnected', { code });
    if (!this.#closed && this.#opts.reconnect !== false) this.#scheduleReconnect();
  }

  #scheduleReconnect(afterMs?: number): void {
    const { minMs, maxMs } = this.#opts.backoff ?? { minMs: 250, maxMs: 10_000 };
    const base = Math.min(maxMs, minMs * 2 ** this.#attempt++);
    const wait = afterMs ?? base / 2 + Math.random() * (base / 2);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      if (this.#closed) return;
      this.#open().then(
        async () => {
          if (this.#subs.size > 0) await this.request('bus.subscribe', { topics: [...this.#subs.keys()] }).catch(() => {});
          this.#emitLocal('client.reconnected', { hello: this.#hello });
        },
        (err: unknown) => {
          const e = err as CarapaceError;
          if (e?.code === 'RATE_LIMITED') return this.#scheduleReconnect(Number(e.details?.retryAfterMs ?? maxMs));
          if (PERMANENT.has(e?.code)) return this.#emitLocal('client.failed', { code: e.code, message: e.message, details: e.details });
          this.#scheduleReconnect();
        },
      );
    }, wait);
  }

  #emitLocal(event: string, payload: unknown): void {
    for (const h of this.#handlers.get(event) ?? []) h(payload, event);
  }

  /** Call a method; rejects with CarapaceError carrying the wire code and details. */
  request<T = unknown>(method: string, params: Record<string, unknown> = {}, opts: { timeoutMs?: number } = {}): Promise<T> {
    const ws = this.#ws;
    if (!ws || ws.readyState !== OPEN || !this.#hello) return Promise.reject(new CarapaceError('UNAVAILABLE', 'not connected', { retryable: true }));
    const id = String(this.#nextId++);
    return new Promise<T>((resolve, reject) => {
      const timeoutMs = opts.timeoutMs ?? this.#opts.requestTimeoutMs ?? 30_000;
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, deadline: timeoutMs > 0 ? Date.now() + timeoutMs : 0, method });
      if (timeoutMs > 0) this.#ensureSweep();
      ws.send(JSON.stringify({ type: 'req', id, method, params }));
    });
  }

  #ensureSweep(): void {
    if (this.#sweep) return;
    this.#sweep = setInterval(() => {
      const now = Date.now();
      for (const [id, p] of this.#pending) {
        if (p.deadline > 0 && p.deadline <= now) {
          this.#pending.delete(id);
          p.reject(new CarapaceError('UNAVAILABLE', `${p.method} timed out`, { retryable: true }));
        }
      }
      if (this.#pending.size === 0 && this.#sweep) {
        clearInterval(this.#sweep);
        this.#sweep = null;
      }
    }, 250);
    (this.#sweep as { unref?: () => void }).unref?.();
  }

  /** Listen to an event by name (`*` for all); returns unsubscribe. Local events: client.disconnected, client.reconnected, client.failed. */
  on(event: string, handler: Handler): () => void {
    let set = this.#handlers.get(event);
    if (!set) this.#handlers.set(event, (set = new Set()));
    set.add(handler);
    return () => set.delete(handler);
  }

  /** Subscribe to topic patterns; resumed automatically after a reconnect. */
  async subscribe(topics: string[], handler: (m: BusMessage) => void): Promise<() => void> {
    for (const t of topics) {
      let set = this.#subs.get(t);
      if (!set) this.#subs.set(t, (set = new Set()));
      set.add(handler);
    }
    try {
      await this.request('bus.subscribe', { topics });
    } catch (err) {
      for (const t of topics) this.#subs.get(t)?.delete(handler);
      throw err;
    }
    return () => {
      const gone: string[] = [];
      for (const t of topics) {
        const set = this.#subs.get(t);
        set?.delete(handler);
        if (set && set.size === 0) {
          this.#subs.delete(t);
          gone.push(t);
        }
      }
      if (gone.length && this.connected) void this.request('bus.unsubscribe', { topics: gone }).catch(() => {});
    };
  }

  publish(topic: string, payload: unknown, idempotencyKey: string = randomKey()): Promise<{ id: string; topic: string; ts: number }> {
    return this.request('bus.publish', { topic, payload, idempotencyKey });
  }

  close(): void {
    this.#closed = true;
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
    this.#hello = null;
    const ws = this.#ws;
    this.#ws = null;
    if (this.#sweep) clearInterval(this.#sweep);
    this.#sweep = null;
    for (const [id, p] of this.#pending) {
      p.reject(new CarapaceError('UNAVAILABLE', 'client closed', { retryable: false }));
      this.#pending.delete(id);
    }
    try {
      ws?.close(1000);
    } catch {
      // already closed
    }
  }
}

function randomKey(): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  return c?.randomUUID ? c.randomUUID() : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}
