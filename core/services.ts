import type { ServiceFactory } from './kernel.ts';

type RuntimeFactories = typeof import('./runtime/services.ts');
const runtime =
  (name: { [K in keyof RuntimeFactories]: RuntimeFactories[K] extends ServiceFactory ? K : never }[keyof RuntimeFactories]): ServiceFactory =>
  async (ctx, registry) => ((await import('./runtime/services.ts'))[name] as ServiceFactory)(ctx, registry);

/**
 * The kernel services built before the gateway listens, in order: those that add
 * HTTP routes (fastify takes routes only before it listens) and what they need.
 * Each is loaded lazily, so nothing `/healthz` does not need is imported before it.
 */
export const serviceFactories: ServiceFactory[] = [
  // First, so that every later service can registry.get('metrics') at construction.
  async (ctx, registry) => (await import('./ops/metrics.ts')).createMetricsService(ctx, registry),
  async (ctx, registry) => (await import('./bus/server.ts')).busService(ctx, registry),
  // ui: the Control UI / WebChat page at `/`; its file server loads on the first request.
  async (ctx, registry) => (await import('./ui/service.ts')).uiService(ctx, registry),
  runtime('hooksFactory'),
];

/**
 * The services built once the gateway listens (so `/healthz` answers first) and
 * before run/gateway.json announces it: no routes of their own.
 */
export const lateServiceFactories: ServiceFactory[] = [
  // plugins: verifies every manifest (and hashes its files) at construction, so it
  // comes after /healthz answers; isolates and workers start on first use.
  async (ctx, registry) => {
    const { createPluginHost } = await import('./plugins/host.ts');
    const { kernelSecrets, kernelPluginConfig, kernelUserConfig } = await import('./runtime/services.ts');
    const bus = registry.find<import('./kernel.ts').Service & { broker?: import('./bus/types.ts').Broker }>('bus');
    const host = createPluginHost(ctx, { broker: bus?.broker, secrets: kernelSecrets(ctx), pluginConfig: kernelPluginConfig(ctx), userConfig: kernelUserConfig(ctx) });
    host.discover();
    // Edits a plugin's schema refuses are refused (config.json keeps its last valid
    // state); one already there at start is the plugin's refusal when it loads.
    const { checkPluginConfig } = await import('./plugins/config-check.ts');
    const check = (raw: Record<string, unknown>) => checkPluginConfig(raw, host.manifests());
    ctx.config.addCheck(check);
    try {
      check(ctx.config.raw);
    } catch (err) {
      ctx.log.error('config.json: a plugin will refuse to start until this is fixed', { error: (err as Error).message });
    }
    return host;
  },
  runtime('approvalsFactory'),
  runtime('schedulerFactory'),
  runtime('agentFactory'),
  runtime('channelsFactory'),
  runtime('heartbeatFactory'),
];
