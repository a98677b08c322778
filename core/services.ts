import type { ServiceFactory } from './kernel.ts';

/**
 * The kernel services the gateway starts, in order (stopped in reverse). Each
 * entry is loaded lazily so that nothing `/healthz` does not need is imported
 * before the gateway listens.
 */
export const serviceFactories: ServiceFactory[] = [
  async (ctx, registry) => (await import('./bus/server.ts')).busService(ctx, registry),
];
