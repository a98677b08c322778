// Helpers for bus tests: an in-process gateway on a temp home and port 0, the
// owner's client, and a raw socket that speaks the wire format by hand (for attacks).
import WebSocket from 'ws';
import { once } from 'node:events';
import { tempHome, type TempHome } from './home.ts';
import { startGateway, type Gateway } from '../../core/gateway/gateway.ts';
import { createBusService, type BusService } from '../../core/bus/server.ts';
import type { BusLimits } from '../../core/bus/limits.ts';
import { generateKeyPair, sign, type KeyPair } from '../../core/identity/keys.ts';
import { connectPayload } from '../../core/bus/signing.ts';
import { nodeClient } from '../../core/client/node.ts';
import { OPERATOR_SCOPES } from '../../core/bus/devices.ts';
import type { BusClient } from '../../core/client/client.ts';
import type { Clock } from '../../core/clock.ts';

export interface BusEnv {
  home: TempHome;
  gw: Gateway;
  bus: BusService;
  url: string;
  owner: KeyPair;
  pin: { id: string; publicKey: string };
  /** A client of the owner key with every operator scope, already connected. */
  ownerClient(): Promise<BusClient>;
  client(key: KeyPair, opts?: { scopes?: string[]; role?: 'operator' | 'node'; pairingCode?: string; now?: () => number }): BusClient;
  /** Stop the gateway and, unless keepHome, remove the temp home. */
  stop(opts?: { keepHome?: boolean }): Promise<void>;
}

export async function startBus(opts: { limits?: Partial<BusLimits>; clock?: Clock; home?: TempHome } = {}): Promise<BusEnv> {
  const home = opts.home ?? tempHome('bus');
  const gw = await startGateway({ home: home.dir, port: 0, logStream: null, clock: opts.clock, services: [createBusService({ limits: opts.limits })] });
  const bus = gw.registry.get<BusService>('bus');
  const url = `ws://127.0.0.1:${gw.port}/ws`;
  const owner = gw.ctx.identity.owner;
  const pin = { id: gw.ctx.identity.gateway.id, publicKey: gw.ctx.identity.gateway.publicKeyB64 };
  const clients: BusClient[] = [];
  const client: BusEnv['client'] = (key, o = {}) => {
    const c = nodeClient({ url, key, pin, scopes: o.scopes ?? [...OPERATOR_SCOPES], role: o.role, pairingCode: o.pairingCode, reconnect: false, now: o.now ?? (opts.clock ? () => opts.clock!.now() : undefined), client: { name: 'test', version: '1', platform: 'node' } });
    clients.push(c);
    return c;
  };
  return {
    home,
    gw,
    bus,
    url,
    owner,
    pin,
    client,
    async ownerClient() {
      const c = client(owner);
      await c.connect();
      return c;
    },
    async stop(o = {}) {
      for (const c of clients) c.close();
      await gw.stop('test');
      if (!opts.home && !o.keepHome) home.cleanup();
    },
  };
}

export interface Frame {
  type: string;
  id?: string;
  ok?: boolean;
  event?: string;
  payload?: any;
  error?: { code: string; message: string; details?: any };
  seq?: number;
}

/** A socket driven by hand: frames are queued as they arrive; `close` resolves with the close code. */
export class RawSocket {
  readonly ws: WebSocket;
  readonly frames: Frame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly opened: Promise<void>;
  #waiters: (() => void)[] = [];

  /** `localAddress`: another loopback address (127.0.0.2...) to connect from, as a second machine would. */
  constructor(url: string, opts: { origin?: string; headers?: Record<string, string>; localAddress?: string } = {}) {
    this.ws = new WebSocket(url, { origin: opts.origin, headers: opts.headers, perMessageDeflate: false, localAddress: opts.localAddress });
    this.ws.on('message', (d) => {
      this.frames.push(JSON.parse(String(d)) as Frame);
      for (const w of this.#waiters.splice(0)) w();
    });
    this.ws.on('error', () => {});
    this.opened = once(this.ws, 'open').then(() => undefined);
    this.closed = new Promise((resolve) => this.ws.on('close', (code, reason) => {
      resolve({ code, reason: String(reason) });
      for (const w of this.#waiters.splice(0)) w();
    }));
  }

  /** The next frame matching `pred` (consumed), or null if the socket closes first. */
  async next(pred: (f: Frame) => boolean = () => true): Promise<Frame | null> {
    for (;;) {
      const i = this.frames.findIndex(pred);
      if (i >= 0) return this.frames.splice(i, 1)[0];
      if (this.ws.readyState === WebSocket.CLOSED) return null;
      await new Promise<void>((r) => this.#waiters.push(r));
    }
  }

  async challenge(): Promise<{ nonce: string; ts: number; gatewayId: string; gatewayPublicKey: string }> {
    const f = await this.next((x) => x.event === 'connect.challenge');
    if (!f) throw new Error('closed before the challenge');
    return f.payload;
  }

  send(value: unknown): void {
    this.ws.send(typeof value === 'string' || Buffer.isBuffer(value) ? value : JSON.stringify(value));
  }

  async request(id: string, method: string, params?: unknown): Promise<Frame | null> {
    this.send({ type: 'req', id, method, ...(params === undefined ? {} : { params }) });
    return this.next((f) => f.type === 'res' && f.id === id);
  }

  close(): void {
    this.ws.terminate();
  }
}

export interface ConnectOverrides {
  key?: KeyPair;
  signingKey?: KeyPair;
  role?: string;
  scopes?: string[];
  signedScopes?: string[];
  nonce?: string;
  signedAt?: number;
  deviceId?: string;
  publicKey?: string;
  signature?: string;
  protocol?: number;
  pairingCode?: string;
  gatewayId?: string;
}

/** Params of a correctly signed connect, with any field overridden to build an attack. */
export function connectParams(ch: { nonce: string; gatewayId: string }, o: ConnectOverrides = {}): Record<string, unknown> {
  const key = o.key ?? generateKeyPair();
  const role = o.role ?? 'operator';
  const scopes = o.scopes ?? ['operator.read'];
  const nonce = o.nonce ?? ch.nonce;
  const signedAt = o.signedAt ?? Date.now();
  const deviceId = o.deviceId ?? key.id;
  const msg = connectPayload({ gatewayId: o.gatewayId ?? ch.gatewayId, deviceId, role, scopes: o.signedScopes ?? scopes, nonce, signedAt });
  const params: Record<string, unknown> = {
    protocol: o.protocol ?? 1,
    client: { name: 'raw', version: '1', platform: 'test' },
    role,
    scopes,
    device: { id: deviceId, publicKey: o.publicKey ?? key.publicKeyB64, nonce, signedAt, signature: o.signature ?? sign(msg, o.signingKey ?? key) },
  };
  if (o.pairingCode !== undefined) params.pairingCode = o.pairingCode;
  return params;
}

export { generateKeyPair };
