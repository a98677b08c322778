// The RPC method table behind `req` frames. Other services register their
// methods here (through the bus service) without touching bus code. The only
// writer of bus_method_results: results of calls that carried an idempotencyKey,
// so a retry after a reconnect gets the first result instead of a second effect.
import type { ValidateFunction } from 'ajv';
import { kernelAjv } from '../schema.ts';
import { CarapaceError } from '../errors.ts';
import { check } from './frames.ts';
import { hasScope } from './devices.ts';
import type { Caller, MethodDef, MethodRegistry } from './types.ts';
import type { Db } from '../store/db.ts';
import type { Clock } from '../clock.ts';

const IDEMPOTENCY_TTL_MS = 24 * 60 * 60_000;
const idempotencyKeySchema = { type: 'string', minLength: 1, maxLength: 128 } as const;

/** A method's params schema as callers must satisfy it: every object schema also admits `idempotencyKey`. */
export function withKeyProperty(schema: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (!schema) return undefined;
  const props = schema.properties as Record<string, unknown> | undefined;
  if (schema.type !== 'object' || !props || 'idempotencyKey' in props) return schema;
  return { ...schema, properties: { ...props, idempotencyKey: idempotencyKeySchema } };
}

interface Entry {
  def: MethodDef<never, unknown>;
  validate: ValidateFunction | null;
  storeResults: boolean;
}

export interface RegisterOptions {
  /**
   * The handler keeps its own idempotency (bus.publish: the broker's, in memory),
   * so results are not written to SQLite — one fsync per message would cap the bus at the disk.
   */
  handlerIdempotency?: boolean;
}

export interface BusMethods extends MethodRegistry {
  register<P = Record<string, unknown>, R = unknown>(name: string, def: MethodDef<P, R>, opts?: RegisterOptions): void;
  has(name: string): boolean;
  names(): string[];
  /** Scope check, params check, idempotency, then the handler. Throws CarapaceError. */
  call(name: string, params: Record<string, unknown>, caller: Caller): Promise<unknown>;
}

export function createMethodRegistry(deps: { db: Db; clock: Clock }): BusMethods {
  const methods = new Map<string, Entry>();
  const validateKey = kernelAjv.compile(idempotencyKeySchema);
  const getResult = deps.db.prepare('SELECT result FROM bus_method_results WHERE device_id = ? AND method = ? AND idem_key = ?');
  const putResult = deps.db.prepare('INSERT OR IGNORE INTO bus_method_results (device_id, method, idem_key, result, created_at) VALUES (?, ?, ?, ?, ?)');
  const prune = deps.db.prepare('DELETE FROM bus_method_results WHERE created_at < ?');
  // Two copies of one call in flight at once must share one execution.
  const inflight = new Map<string, Promise<unknown>>();
  let lastPrune = 0;

  return {
    register(name, def, opts = {}) {
      if (methods.has(name)) throw new Error(`bus method ${name} registered twice`);
      if (!/^[a-z][A-Za-z0-9]*(\.[a-z][A-Za-z0-9]*){0,4}$/.test(name)) throw new Error(`bad bus method name ${name}`);
      const schema = withKeyProperty(def.params);
      methods.set(name, { def: def as unknown as MethodDef<never, unknown>, validate: schema ? kernelAjv.compile(schema) : null, storeResults: !opts.handlerIdempotency });
    },
    has: (name) => methods.has(name),
    names: () => [...methods.keys()].sort(),
    async call(name, params, caller) {
      const entry = methods.get(name);
      if (!entry) throw new CarapaceError('NOT_FOUND', `unknown method ${name}`, { method: name });
      const { def, validate, storeResults } = entry;
      if (!hasScope(caller.scopes, def.scope)) throw new CarapaceError('FORBIDDEN', `${name} needs ${def.scope}`, { missingScope: def.scope });
      if (validate) check(validate, params, '/params');
      const key = params.idempotencyKey;
      if (key === undefined && def.idempotent) {
        throw new CarapaceError('INVALID_REQUEST', `${name} needs an idempotencyKey`, { pointer: '/params/idempotencyKey' });
      }
      if (key !== undefined && !validateKey(key)) throw new CarapaceError('INVALID_REQUEST', 'idempotencyKey must be a string of 1 to 128 characters', { pointer: '/params/idempotencyKey' });
      if (key === undefined || !storeResults) return def.handler(params as never, caller);

      const now = deps.clock.now();
      if (now - lastPrune > 60_000) {
        lastPrune = now;
        prune.run(now - IDEMPOTENCY_TTL_MS);
      }
      const stored = getResult.get(caller.deviceId, name, key) as { result: string } | undefined;
      if (stored) {
        const result = JSON.parse(stored.result) as unknown;
        def.replayed?.(result as never, caller);
        return result;
      }
      const slot = `${caller.deviceId}\n${name}\n${key}`;
      const running = inflight.get(slot);
      if (running) {
        const result = await running;
        def.replayed?.(result as never, caller);
        return result;
      }
      const p = (async () => {
        const result = await def.handler(params as never, caller);
        putResult.run(caller.deviceId, name, key, JSON.stringify(result ?? null), deps.clock.now());
        return result;
      })();
      inflight.set(slot, p);
      try {
        return await p;
      } finally {
        inflight.delete(slot);
      }
    },
  };
}
