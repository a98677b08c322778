import Fastify, { type FastifyInstance } from 'fastify';
import { isDeepStrictEqual } from 'node:util';
import { X509Certificate } from 'node:crypto';
import type { Server as TlsServer } from 'node:tls';
import { homePaths, ensureHome, type HomePaths } from '../home.ts';
import { loadConfig, type Config } from '../config/config.ts';
import { createLiveConfig } from '../config/live.ts';
import { createLogHub, type LogHub } from '../log/logger.ts';
import { openDb, type Db } from '../store/db.ts';
import { openAuditLog } from '../audit.ts';
import { loadOrCreateKey } from '../identity/keys.ts';
import { acquireLock, writeRunInfo, removeRunInfo } from './lock.ts';
import { loadTls, watchTlsFiles, type LoadedTls } from './tls.ts';
import { drainOnClose } from './drain.ts';
import { ServiceRegistry, type KernelContext, type ServiceFactory } from '../kernel.ts';
import { systemClock, type Clock } from '../clock.ts';
import { VERSION } from '../version.ts';
import { serviceFactories, lateServiceFactories } from '../services.ts';
import { secretValues, registerEnvSecrets } from '../secrets/known.ts';

export interface GatewayOptions {
  home: string;
  port?: number;
  bind?: string;
  logStream?: NodeJS.WritableStream | null;
  pretty?: boolean;
  clock?: Clock;
  services?: ServiceFactory[];
  /** Built after listening; no routes. Defaults to the kernel's late services (none when `services` is given). */
  lateServices?: ServiceFactory[];
  /** How often the TLS certificate and key files are checked for a renewal (ms). */
  tlsPollMs?: number;
}

const TLS_POLL_MS = 30_000;
// Node's default is two minutes: a client that stalls its hello holds a socket that
// long, and a stop waits for it (drain.ts cuts only the ones that sent nothing).
const TLS_HANDSHAKE_MS = 10_000;

export interface Gateway {
  ctx: KernelContext;
  app: FastifyInstance;
  registry: ServiceRegistry;
  url: string;
  port: number;
  host: string;
  /** Served over TLS (gateway.tls). */
  tls: boolean;
  stop(reason?: string): Promise<void>;
}

/** `loopback` → 127.0.0.1, `lan` → 0.0.0.0, anything else is a literal address. */
export function bindHost(bind: string): string {
  if (bind === 'loopback') return '127.0.0.1';
  if (bind === 'lan') return '0.0.0.0';
  return bind;
}

// fastify's request and connection timeouts default to 0 (none): a slow-loris
// client could hold sockets forever.
const HTTP_LIMITS = {
  connectionTimeout: 30_000,
  requestTimeout: 30_000,
  keepAliveTimeout: 5_000,
  bodyLimit: 1024 * 1024,
};

/**
 * Start the gateway on a home: lock, config, database, identity, services, HTTP.
 * Fails (throws) before listening if anything is wrong, releasing what it took.
 */
export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const paths: HomePaths = homePaths(opts.home);
  registerEnvSecrets();
  process.umask(0o077);
  ensureHome(paths);
  const loaded = loadConfig(paths.config); // throws ConfigError before anything else is taken
  const tls = loadTls(loaded.config, paths.root); // so do unreadable TLS files
  const releaseLock = acquireLock(paths);
  const cleanups: (() => unknown)[] = [releaseLock];
  let logHub: LogHub | undefined;
  let db: Db | undefined;
  try {
    const config: Config = loaded.config;
    logHub = createLogHub({
      level: config.logging.level,
      pretty: opts.pretty ?? false,
      stream: opts.logStream,
      dir: paths.logsDir,
      secretValues: () => secretValues(),
    });
    const log = logHub.logger;
    db = openDb(paths.db);
    const openedDb = db;
    cleanups.unshift(() => openedDb.close());
    const clock = opts.clock ?? systemClock;
    const identity = { gateway: loadOrCreateKey(paths.gatewayKey), owner: loadOrCreateKey(paths.ownerKey) };
    const audit = openAuditLog(db, paths, { now: () => clock.now(), secretValues, key: identity.gateway });
    const liveConfig = createLiveConfig(paths.config, loaded, { audit, log });
    cleanups.unshift(() => liveConfig.close());
    let servedTls: LoadedTls | null = tls;
    // Set once the server listens.
    let reloadTls = (_why: string): void => {};
    liveConfig.onChange((next, prev) => {
      logHub!.setLevel(next.logging.level);
      if (isDeepStrictEqual(next.gateway.tls, prev.gateway.tls)) return;
      if (servedTls && next.gateway.tls) reloadTls('gateway.tls changed');
      else log.warn('gateway.tls turned on or off: that applies when the gateway restarts; until then it serves as it started', { tls: servedTls !== null });
    });

    const ctx: KernelContext = {
      paths,
      config: liveConfig,
      log,
      logHub,
      db,
      audit,
      identity,
      clock,
      version: VERSION,
      startedAt: clock.now(),
    };

    const app = Fastify({ logger: false, ...HTTP_LIMITS, return503OnClosing: true, forceCloseConnections: 'idle', ...(tls ? { https: { cert: tls.cert, key: tls.key, handshakeTimeout: TLS_HANDSHAKE_MS } } : {}) });
    const drain = drainOnClose(app.server);
    app.get('/healthz', async () => ({ ok: true, version: VERSION, uptimeMs: clock.now() - ctx.startedAt }));

    const registry = new ServiceRegistry();
    for (const factory of opts.services ?? serviceFactories) {
      const service = await factory(ctx, registry);
      registry.add(service);
      await service.routes?.(app);
    }

    const bind = opts.bind ?? config.gateway.bind;
    const host = bindHost(bind);
    const port = opts.port ?? config.gateway.port;
    await app.listen({ host, port });
    const address = app.server.address();
    const actualPort = typeof address === 'object' && address ? address.port : port;
    const url = `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;
    log.info('gateway listening', { url, home: paths.root, version: VERSION });

    for (const factory of opts.lateServices ?? (opts.services ? [] : lateServiceFactories)) {
      const service = await factory(ctx, registry);
      if (service.routes) throw new Error(`service ${service.name} adds routes, so it must be built before the gateway listens`);
      registry.add(service);
    }
    for (const service of registry.all()) await service.start?.();

    const recordRunInfo = () =>
      writeRunInfo(paths, { pid: process.pid, port: actualPort, bind, host, startedAt: ctx.startedAt, version: VERSION, ...(servedTls ? { tls: { cert: servedTls.certPath, sha256: servedTls.sha256 } } : {}) });
    recordRunInfo();
    let unwatchTls = () => {};
    const watchServedTls = () => {
      unwatchTls();
      if (servedTls) unwatchTls = watchTlsFiles(servedTls, opts.tlsPollMs ?? TLS_POLL_MS, () => reloadTls('its files changed'));
    };
    // A renewed certificate reaches new connections; open ones keep theirs. Files that
    // do not load (a renewal half-written, a key that does not match) leave the served
    // certificate in place: never plain text, never a broken context.
    reloadTls = (why) => {
      const before = servedTls!;
      let next: LoadedTls | null;
      try {
        next = loadTls(liveConfig.current, paths.root);
      } catch (err) {
        log.warn('gateway.tls: the gateway keeps serving its certificate, the new files do not load', { why, reason: (err as Error).message, sha256: before.sha256 });
        return;
      }
      if (!next) return;
      const moved = next.certPath !== before.certPath || next.keyPath !== before.keyPath;
      if (next.sha256 !== before.sha256) {
        (app.server as unknown as TlsServer).setSecureContext({ cert: next.cert, key: next.key });
        audit.append({ actor: 'gateway', action: 'gateway.tls.reload', data: { why, from: before.sha256, to: next.sha256, cert: next.certPath } });
        log.info('gateway.tls: serving the new certificate', { why, sha256: next.sha256, notAfter: new X509Certificate(next.cert).validTo });
      }
      servedTls = next;
      recordRunInfo();
      if (moved) watchServedTls();
    };
    watchServedTls();
    cleanups.unshift(() => unwatchTls());
    audit.append({ actor: 'gateway', action: 'gateway.start', data: { bind, port: actualPort, version: VERSION, tls: tls !== null } });
    log.info('gateway ready', { url, services: registry.all().length, readyMs: clock.now() - ctx.startedAt });

    let stopping: Promise<void> | null = null;
    const stop = (reason = 'stop'): Promise<void> => {
      stopping ??= (async () => {
        log.info('gateway stopping', { reason });
        await drain.close(() => app.close());
        for (const service of registry.all().reverse()) {
          try {
            await service.stop?.();
          } catch (err) {
            log.error('service failed to stop cleanly', { service: service.name, err });
          }
        }
        audit.append({ actor: 'gateway', action: 'gateway.stop', data: { reason } });
        removeRunInfo(paths);
        for (const cleanup of cleanups) cleanup();
        await logHub!.close();
      })();
      return stopping;
    };

    return { ctx, app, registry, url, port: actualPort, host, tls: tls !== null, stop };
  } catch (err) {
    for (const cleanup of cleanups) {
      try {
        cleanup();
      } catch {
        // best effort: we are already failing
      }
    }
    await logHub?.close();
    throw err;
  }
}
