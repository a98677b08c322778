import { Ajv } from 'ajv';
import type { Caller, MethodDef, MethodRegistry, EventFanout } from '../../core/bus/types.ts';
import { CarapaceError } from '../../core/errors.ts';
import { withKeyProperty } from '../../core/bus/methods.ts';

/**
 * An in-process MethodRegistry with the bus's contract (params schema, scope check)
 * for testing method handlers without a socket. The real one is core/bus's.
 */
export class TestMethods implements MethodRegistry {
  readonly defs = new Map<string, MethodDef<any, any>>();
  readonly #ajv = new Ajv({ allErrors: false, strict: false });
  readonly #validators = new Map<string, (v: unknown) => boolean>();

  register<P, R>(name: string, def: MethodDef<P, R>): void {
    if (this.defs.has(name)) throw new Error(`method ${name} registered twice`);
    this.defs.set(name, def as MethodDef<any, any>);
    const params = withKeyProperty(def.params);
    if (params) this.#validators.set(name, this.#ajv.compile(params));
  }

  async call(name: string, params: Record<string, unknown>, caller: Partial<Caller> = {}): Promise<unknown> {
    const def = this.defs.get(name);
    if (!def) throw new CarapaceError('NOT_FOUND', `no method ${name}`);
    const c: Caller = {
      deviceId: 'owner-device',
      role: 'operator',
      scopes: ['operator.read', 'operator.write', 'operator.admin', 'operator.pairing'],
      emit: () => {},
      signal: new AbortController().signal,
      ...caller,
    };
    if (!c.scopes.includes(def.scope)) throw new CarapaceError('FORBIDDEN', 'missing scope', { missingScope: def.scope });
    const v = this.#validators.get(name);
    if (v && !v(params)) throw new CarapaceError('INVALID_REQUEST', `invalid params for ${name}`);
    return def.handler(params, c);
  }
}

export class RecordingFanout implements EventFanout {
  readonly events: { event: string; payload: unknown; scope: string }[] = [];
  broadcast(event: string, payload: unknown, scope: string): void {
    this.events.push({ event, payload, scope });
  }
}
