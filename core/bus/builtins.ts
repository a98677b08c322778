// The methods the bus itself answers (protocol.md "Methods (v1)"): health,
// status, devices.*, bus.subscribe/publish/unsubscribe, logs.tail, config.get/set.
import { CarapaceError } from '../errors.ts';
import { ConfigError, getPath, splitPath } from '../config/config.ts';
import { LEVELS, type Level } from '../log/logger.ts';
import type { KernelContext, ServiceRegistry } from '../kernel.ts';
import type { BusPort, Caller, EventFanout } from './types.ts';
import type { BusMethods } from './methods.ts';
import type { DeviceRecord, DeviceStore, PairingRequest, Role } from './devices.ts';

export interface BuiltinDeps {
  ctx: KernelContext;
  registry: ServiceRegistry;
  methods: BusMethods;
  devices: DeviceStore;
  fanout: EventFanout;
  disconnectDevice(deviceId: string, reason: string): number;
  connectionOf(caller: Caller): { port: BusPort; subscriptions: Map<string, () => void> };
  onlineDevices(): Set<string>;
}

const code = { type: 'string', minLength: 1, maxLength: 16 } as const;
const role = { enum: ['operator', 'node'] } as const;
const scopes = { type: 'array', maxItems: 16, uniqueItems: true, items: { type: 'string', pattern: '^(operator|node)\\.[a-z]{1,32}$' } } as const;
const deviceId = { type: 'string', pattern: '^[0-9a-f]{64}$' } as const;
const topics = { type: 'array', minItems: 1, maxItems: 32, items: { type: 'string', minLength: 1, maxLength: 256 } } as const;

function actorOf(caller: Caller): string {
  return `device:${caller.deviceId}`;
}

function publicDevice(d: DeviceRecord, online: boolean) {
  return { id: d.id, role: d.role, scopes: d.scopes, name: d.name, platform: d.platform, pairedAt: d.pairedAt, pairedBy: d.pairedBy, revokedAt: d.revokedAt, lastSeenAt: d.lastSeenAt, owner: d.owner, online };
}

function publicRequest(r: PairingRequest) {
  return { requestId: r.requestId, code: r.code, deviceId: r.deviceId, role: r.role, scopes: r.scopes, client: r.client, createdAt: r.createdAt, expiresAt: r.expiresAt };
}

export function registerBuiltins(deps: BuiltinDeps): void {
  const { ctx, methods, devices } = deps;

  methods.register('health', {
    scope: 'operator.read',
    handler: () => ({ ok: true, uptimeMs: ctx.clock.now() - ctx.startedAt, version: ctx.version }),
  });

  methods.register('status', {
    scope: 'operator.read',
    async handler() {
      const out: Record<string, unknown> = {
        gateway: {
          id: ctx.identity.gateway.id,
          publicKey: ctx.identity.gateway.publicKeyB64,
          version: ctx.version,
          pid: process.pid,
          startedAt: ctx.startedAt,
          uptimeMs: ctx.clock.now() - ctx.startedAt,
          bind: ctx.config.current.gateway.bind,
        },
      };
      for (const service of deps.registry.all()) {
        if (!service.status) continue;
        try {
          out[service.name] = await service.status();
        } catch (err) {
          ctx.log.error('service status failed', { service: service.name, err });
          out[service.name] = { error: 'status unavailable' };
        }
      }
      return out;
    },
  });

  methods.register('devices.pending', {
    scope: 'operator.pairing',
    params: { type: 'object', properties: {}, additionalProperties: false },
    handler: () => ({ requests: devices.pending().map(publicRequest) }),
  });

  methods.register<{ code: string; role?: Role; scopes?: string[] }>('devices.approve', {
    scope: 'operator.pairing',
    params: { type: 'object', properties: { code, role, scopes }, required: ['code'], additionalProperties: false },
    handler: (p, caller) => ({ device: publicDevice(devices.approve(p.code, { role: p.role, scopes: p.scopes }, { actor: actorOf(caller), scopes: caller.scopes }), false) }),
  });

  methods.register<{ code: string }>('devices.reject', {
    scope: 'operator.pairing',
    params: { type: 'object', properties: { code }, required: ['code'], additionalProperties: false },
    handler: (p, caller) => ({ rejected: publicRequest(devices.reject(p.code, { actor: actorOf(caller), scopes: caller.scopes })) }),
  });

  methods.register<{ role?: Role; scopes?: string[]; ttlMs?: number }>('devices.invite', {
    scope: 'operator.pairing',
    params: { type: 'object', properties: { role, scopes, ttlMs: { type: 'integer', minimum: 10_000, maximum: 7 * 24 * 3600_000 } }, additionalProperties: false },
    handler: (p, caller) => {
      const inv = devices.invite(p, { actor: actorOf(caller), scopes: caller.scopes });
      return { code: inv.code, role: inv.role, scopes: inv.scopes, expiresAt: inv.expiresAt, gatewayId: ctx.identity.gateway.id, gatewayPublicKey: ctx.identity.gateway.publicKeyB64 };
    },
  });

  methods.register('devices.list', {
    scope: 'operator.pairing',
    params: { type: 'object', properties: {}, additionalProperties: false },
    handler: () => {
      const on = deps.onlineDevices();
      return { devices: devices.list().map((d) => publicDevice(d, on.has(d.id))) };
    },
  });

  methods.register<{ deviceId: string }>('devices.revoke', {
    scope: 'operator.pairing',
    params: { type: 'object', properties: { deviceId }, required: ['deviceId'], additionalProperties: false },
    handler: (p, caller) => {
      const d = devices.revoke(p.deviceId, { actor: actorOf(caller), scopes: caller.scopes });
      const closed = deps.disconnectDevice(d.id, 'device revoked');
      return { device: publicDevice(d, false), closedSockets: closed };
    },
  });

  methods.register<{ topics: string[] }>('bus.subscribe', {
    scope: 'operator.read',
    params: { type: 'object', properties: { topics }, required: ['topics'], additionalProperties: false },
    handler: (p, caller) => {
      const conn = deps.connectionOf(caller);
      const added: string[] = [];
      for (const pattern of p.topics) {
        if (conn.subscriptions.has(pattern)) continue;
        const off = conn.port.subscribe(pattern, (msg) => caller.emit('bus.message', msg));
        conn.subscriptions.set(pattern, off);
        added.push(pattern);
      }
      return { subscribed: [...conn.subscriptions.keys()] };
    },
  });

  methods.register<{ topics: string[] }>('bus.unsubscribe', {
    scope: 'operator.read',
    params: { type: 'object', properties: { topics }, required: ['topics'], additionalProperties: false },
    handler: (p, caller) => {
      const conn = deps.connectionOf(caller);
      for (const pattern of p.topics) {
        conn.subscriptions.get(pattern)?.();
        conn.subscriptions.delete(pattern);
      }
      return { subscribed: [...conn.subscriptions.keys()] };
    },
  });

  // Idempotency here is the broker's (per publisher, in memory): bus traffic is
  // not durable, and a database write per message would cap the bus at the disk's fsync rate.
  methods.register<{ topic: string; payload?: unknown; idempotencyKey?: string; sessionKey?: string; traceId?: string }>('bus.publish', {
    scope: 'operator.write',
    params: {
      type: 'object',
      properties: { topic: { type: 'string', minLength: 1, maxLength: 256 }, payload: {}, idempotencyKey: { type: 'string', minLength: 1, maxLength: 128 }, sessionKey: { type: 'string', maxLength: 256 }, traceId: { type: 'string', maxLength: 128 } },
      required: ['topic', 'idempotencyKey'],
      additionalProperties: false,
    },
    handler: (p, caller) => {
      const msg = deps.connectionOf(caller).port.publish(p.topic, p.payload ?? null, { idempotencyKey: p.idempotencyKey, sessionKey: p.sessionKey, traceId: p.traceId });
      return { id: msg.id, topic: msg.topic, ts: msg.ts };
    },
  }, { handlerIdempotency: true });

  const tails = new WeakSet<Caller>();
  methods.register<{ level?: Level }>('logs.tail', {
    scope: 'operator.admin',
    params: { type: 'object', properties: { level: { enum: Object.keys(LEVELS) } }, additionalProperties: false },
    handler: (p, caller) => {
      if (tails.has(caller)) return { tailing: true };
      tails.add(caller);
      const min = LEVELS[p.level ?? 'info'];
      let inside = false;
      const stop = ctx.logHub.listen((record) => {
        // emit may itself log (a slow consumer being dropped): never recurse.
        if (inside || LEVELS[record.level] < min) return;
        inside = true;
        try {
          caller.emit('log', record);
        } finally {
          inside = false;
        }
      });
      caller.signal.addEventListener('abort', () => stop(), { once: true });
      return { tailing: true };
    },
  });

  methods.register<{ path?: string }>('config.get', {
    scope: 'operator.admin',
    params: { type: 'object', properties: { path: { type: 'string', maxLength: 512 } }, additionalProperties: false },
    handler: (p) => {
      try {
        const value = p.path === undefined ? ctx.config.current : getPath(ctx.config.current, splitPath(p.path));
        if (value === undefined) throw new CarapaceError('NOT_FOUND', `no value at ${p.path}`);
        return { path: p.path ?? '', value };
      } catch (err) {
        if (err instanceof ConfigError) throw new CarapaceError('INVALID_REQUEST', err.message, { pointer: '/params/path', path: err.path });
        throw err;
      }
    },
  });

  methods.register<{ path: string; value?: unknown; unset?: boolean }>('config.set', {
    scope: 'operator.admin',
    params: {
      type: 'object',
      properties: { path: { type: 'string', minLength: 1, maxLength: 512 }, value: {}, unset: { type: 'boolean' } },
      required: ['path'],
      additionalProperties: false,
    },
    handler: (p, caller) => {
      if (p.value === undefined && p.unset !== true) throw new CarapaceError('INVALID_REQUEST', 'config.set needs value (or unset: true)', { pointer: '/params/value' });
      try {
        ctx.config.set(p.path, p.unset ? undefined : p.value, actorOf(caller));
      } catch (err) {
        if (err instanceof ConfigError) throw new CarapaceError('INVALID_REQUEST', err.message, { pointer: '/params/value', path: err.path });
        throw err;
      }
      return { path: p.path, changed: true };
    },
  });
}
