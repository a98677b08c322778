import type { FastifyInstance } from 'fastify';
import type { HomePaths } from './home.ts';
import type { LiveConfig } from './config/live.ts';
import type { Logger, LogHub } from './log/logger.ts';
import type { Db } from './store/db.ts';
import type { AuditLog } from './audit.ts';
import type { KeyPair } from './identity/keys.ts';
import type { Clock } from './clock.ts';

/**
 * What every kernel service is handed at construction: no singletons, so each
 * service can be built in a test with a temp home and a fake clock.
 */
export interface KernelContext {
  paths: HomePaths;
  config: LiveConfig;
  log: Logger;
  logHub: LogHub;
  db: Db;
  audit: AuditLog;
  identity: { gateway: KeyPair; owner: KeyPair };
  clock: Clock;
  version: string;
  startedAt: number;
}

/**
 * A kernel service: built from the context, given the HTTP app to add routes to,
 * started after the gateway listens and stopped, in reverse order, on shutdown.
 * Services find each other through the registry, by name.
 */
export interface Service {
  readonly name: string;
  routes?(app: FastifyInstance): void | Promise<void>;
  start?(): void | Promise<void>;
  /** Finish in-flight work, then release resources. */
  stop?(): void | Promise<void>;
  /** A section of `status` (plugins, channels, queue...). */
  status?(): Record<string, unknown> | Promise<Record<string, unknown>>;
}

export type ServiceFactory = (ctx: KernelContext, registry: ServiceRegistry) => Service | Promise<Service>;

export class ServiceRegistry {
  readonly #services = new Map<string, Service>();

  add(service: Service): void {
    if (this.#services.has(service.name)) throw new Error(`service ${service.name} registered twice`);
    this.#services.set(service.name, service);
  }

  get<T extends Service>(name: string): T {
    const s = this.#services.get(name);
    if (!s) throw new Error(`service ${name} is not running`);
    return s as T;
  }

  find<T extends Service>(name: string): T | undefined {
    return this.#services.get(name) as T | undefined;
  }

  all(): Service[] {
    return [...this.#services.values()];
  }
}
