import type { ServiceFactory } from './kernel.ts';

/**
 * The kernel services the gateway starts, in order (stopped in reverse). Each
 * entry is loaded lazily so that nothing `/healthz` does not need is imported
 * before the gateway listens.
 */
export const serviceFactories: ServiceFactory[] = [
  // First, so that every later service can registry.get('metrics') at construction.
  async (ctx, registry) => (await import('./ops/metrics.ts')).createMetricsService(ctx, registry),
];
