import type { ServiceFactory } from './kernel.ts';

/**
 * The kernel services the gateway starts, in order (stopped in reverse). Each
 * entry is loaded lazily so that nothing `/healthz` does not need is imported
 * before the gateway listens.
 */
export const serviceFactories: ServiceFactory[] = [
  // First, so that every later service can registry.get('metrics') at construction.
  async (ctx, registry) => (await import('./ops/metrics.ts')).createMetricsService(ctx, registry),
  async (ctx, registry) => (await import('./bus/server.ts')).busService(ctx, registry),
  // ui: the Control UI / WebChat page at `/`; its file server loads on the first request.
  async (ctx, registry) => (await import('./ui/service.ts')).uiService(ctx, registry),
  // plugins: verifies manifests at construction; isolates start on first use.
  async (ctx, registry) => {
    const { createPluginHost } = await import('./plugins/host.ts');
    const bus = registry.find<import('./kernel.ts').Service & { broker?: import('./bus/types.ts').Broker }>('bus');
    const host = createPluginHost(ctx, { broker: bus?.broker });
    host.discover();
    return host;
  },
];
