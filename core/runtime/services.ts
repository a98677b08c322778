// How the kernel's parts meet in a running gateway: the agent gets its models
// and tools from the plugin host and its approvals from the owner; channels
// dispatch into the agent and its replies go out through the durable delivery
// queue; the scheduler and heartbeat run turns; every client-facing operation is
// a bus method. Each factory finds what it needs in the registry by name.
import { join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import type { KernelContext, Service, ServiceFactory, ServiceRegistry } from '../kernel.ts';
import type { BusService } from '../bus/server.ts';
import type { PluginHost } from '../plugins/host.ts';
import type { AgentService, SendReceipt } from '../agent/service.ts';
import type { AgentEvent } from '../agent/types.ts';
import type { ChannelsService } from '../channels/service.ts';
import type { Dispatch } from '../channels/router.ts';
import type { Approvals } from '../approvals/approvals.ts';
import type { Scheduler } from '../scheduler/scheduler.ts';
import type { ChannelCapabilities } from '../plugin-api.ts';
import { CarapaceError } from '../errors.ts';
import { systemTimers } from '../timers.ts';
import { effectiveProviders, NO_PROVIDER_HELP } from '../providers/detect.ts';
import { envSecrets, layeredSecrets, type SecretsSource } from '../secrets/source.ts';
import { openSecrets } from '../secrets/store.ts';
import { agentSettings } from '../config/config.ts';
import { agentWorkspace } from '../agent/bindings.ts';
import { createHostModelClient } from './models.ts';
import { createToolRunner, type KernelTool } from './tools.ts';

/** The secrets the kernel substitutes at egress: the encrypted store first, then the environment. */
export function kernelSecrets(ctx: KernelContext): SecretsSource {
  return layeredSecrets(openSecrets(ctx.paths), envSecrets());
}

/**
 * Each plugin's config as the plugin host hands it over: the user's
 * `plugins.<id>.config`, plus what the kernel owns for bundled plugins — the
 * memory plugin's real workspace and data paths and the `memory` settings.
 */
export function kernelPluginConfig(ctx: KernelContext): () => KernelContext['config']['current']['plugins'] {
  return () => {
    const c = ctx.config.current;
    const user = c.plugins ?? {};
    const memory = {
      workspace: agentWorkspace(ctx.paths, c, 'main', undefined),
      dataDir: join(ctx.paths.pluginsDir, 'hybrid', 'data'),
      embedder: c.memory.embedder,
      hybrid: c.memory.hybrid,
      sessions: c.memory.sessions === true,
    };
    return { ...user, hybrid: { ...user.hybrid, config: { ...memory, ...user.hybrid?.config } } };
  };
}

/**
 * The `channels` and `providers` sections as the plugin host hands them to plugins:
 * providers as in effect (the environment's too), keyed by provider id — the
 * host runs one instance of a provider plugin per entry.
 */
export function kernelUserConfig(ctx: KernelContext) {
  return () => {
    const c = ctx.config.current;
    return { channels: c.channels as Record<string, Record<string, unknown>>, providers: effectiveProviders(c) };
  };
}

/** `telegram:123456` or `telegram:123456:thread-7` → an outbound target. */
export function parseDeliverTarget(target: string): { channel: string; chatId: string; threadId?: string } {
  const m = /^([a-z0-9][a-z0-9-]{0,63}):([^:]+)(?::(.+))?$/.exec(target);
  if (!m) throw new CarapaceError('INVALID_REQUEST', `delivery target "${target}" must be channel:chatId`);
  return { channel: m[1], chatId: m[2], ...(m[3] ? { threadId: m[3] } : {}) };
}

const bus = (r: ServiceRegistry) => r.get<BusService>('bus');
const host = (r: ServiceRegistry) => r.get<PluginHost>('plugins');

// ------------------------------------------------------------------ approvals

export const approvalsFactory: ServiceFactory = async (ctx, registry) => {
  const { createApprovals } = await import('../approvals/approvals.ts');
  const { registerApprovalMethods } = await import('../approvals/methods.ts');
  const { askMessages } = await import('../approvals/chat.ts');
  const approvals = createApprovals({
    db: ctx.db,
    audit: ctx.audit,
    timers: systemTimers,
    events: bus(registry).fanout,
    log: ctx.log.child({ service: 'approvals' }),
    // The owner's chats listed in approvals.chat are asked too (core/approvals/chat.ts), through the durable queue.
    onRequested: (ask) => {
      const channels = registry.find<ChannelsService>('channels');
      const authenticated = (channel: string) => channelCapabilities(host(registry), channel)?.authenticatedSender === true;
      for (const msg of askMessages(ctx.config.current, ask, ctx.clock.now(), authenticated)) {
        try {
          channels?.send(msg, { sessionKey: ask.sessionKey });
        } catch (err) {
          ctx.log.warn('could not ask for approval in chat', { approvalId: ask.id, channel: msg.channel, err });
        }
      }
    },
  });
  registerApprovalMethods(bus(registry).methods, approvals);
  return { name: 'approvals', approvals, stop: () => approvals.close(), status: () => ({ pending: approvals.list({ status: 'pending' }).length }) } as Service & { approvals: Approvals };
};

// ------------------------------------------------------------------ scheduler

/** Run one agent turn and wait for its final text (scheduler, heartbeat). */
function runTurn(registry: ServiceRegistry) {
  return async (req: { agentId: string; sessionKey: string; message: string }) => {
    const result = await registry.get<AgentService>('agent').send({ text: req.message, agentId: req.agentId, sessionKey: req.sessionKey }).done;
    if (result.status === 'error') throw new Error(result.text);
    return { text: result.status === 'done' ? result.text : '' };
  };
}

function deliver(registry: ServiceRegistry) {
  return async (target: string, text: string) => {
    const t = parseDeliverTarget(target);
    registry.get<ChannelsService>('channels').send({ ...t, text, idempotencyKey: `deliver:${target}:${Date.now()}:${Math.random().toString(36).slice(2)}` });
  };
}

export const schedulerFactory: ServiceFactory = async (ctx, registry) => {
  const { createScheduler } = await import('../scheduler/scheduler.ts');
  const { registerCronMethods } = await import('../scheduler/methods.ts');
  const scheduler = createScheduler({
    db: ctx.db,
    timers: systemTimers,
    audit: ctx.audit,
    runTurn: runTurn(registry),
    deliver: deliver(registry),
    knownAgent: (id) => ctx.config.current.agents.list.some((a) => a.id === id),
    log: ctx.log.child({ service: 'cron' }),
  });
  registerCronMethods(bus(registry).methods, scheduler);
  return {
    name: 'scheduler',
    scheduler,
    start: () => scheduler.start(),
    stop: () => scheduler.stop(),
    status: () => ({ jobs: scheduler.list().length }),
  } as Service & { scheduler: Scheduler };
};

// ------------------------------------------------------------------ agent

async function kernelTools(ctx: KernelContext, registry: ServiceRegistry): Promise<() => KernelTool[]> {
  const { createExecTool } = await import('../../plugins/tools/exec/index.ts');
  const { bindCron } = await import('../../plugins/tools/cron/index.js');
  const { cronCapability } = await import('../scheduler/capability.ts');
  const scheduler = registry.get<Service & { scheduler: Scheduler }>('scheduler').scheduler;
  const execConfig = () => (ctx.config.current.plugins.exec?.config ?? {}) as Record<string, unknown>;
  const exec = createExecTool({ workspace: agentWorkspace(ctx.paths, ctx.config.current, 'main', undefined), hide: [ctx.paths.root], config: execConfig });
  const cron = bindCron(cronCapability(scheduler, 'cron'));
  const { createSessionTools } = await import('./session-tools.ts');
  const sessions = createSessionTools(() => registry.get<AgentService>('agent'));
  const tools: KernelTool[] = [exec, ...cron, ...sessions];
  return () => tools.filter((t) => ctx.config.current.plugins[t.name]?.enabled !== false);
}

/** A model for agents that name none: the first provider in effect, at its usual default. */
function defaultModel(ctx: KernelContext): string | null {
  const providers = effectiveProviders(ctx.config.current);
  if (process.env.CARAPACE_MODEL) return process.env.CARAPACE_MODEL;
  if (providers.anthropic) return 'anthropic/claude-sonnet-4-6';
  if (providers.openai) return 'openai/gpt-4.1-mini';
  return null;
}

export const agentFactory: ServiceFactory = async (ctx, registry) => {
  const { createAgentService } = await import('../agent/service.ts');
  const { registerAgentMethods } = await import('./agent-methods.ts');
  const plugins = host(registry);
  const broker = bus(registry).broker;
  const agentPort = broker.port('kernel:agent', { publish: ['agent.>'], subscribe: [] });
  const approvals = registry.get<Service & { approvals: Approvals }>('approvals').approvals;
  const runCallers = new Map<string, (ev: AgentEvent) => void>();
  const tools = createToolRunner({ host: plugins, kernelTools: await kernelTools(ctx, registry), audit: ctx.audit });
  const agent = createAgentService(ctx, {
    models: createHostModelClient({ host: plugins, providers: () => effectiveProviders(ctx.config.current) }),
    tools,
    approver: {
      async request(req, signal) {
        const decision = await Promise.race([
          approvals.request({ tool: req.tool, input: req.input, agentId: req.agentId, sessionKey: req.sessionKey, runId: req.runId }),
          new Promise<'denied'>((resolve) => signal.addEventListener('abort', () => resolve('denied'), { once: true })),
        ]);
        return decision === 'approved' ? { approved: true } : { approved: false, reason: decision === 'timeout' ? 'the approval timed out' : 'the owner denied it' };
      },
    },
    events(ev) {
      runCallers.get(ev.runId)?.(ev);
      agentPort.publish('agent.event', ev, { sessionKey: ev.sessionKey });
      if (ev.stream === 'lifecycle' && (ev.data.phase === 'end' || ev.data.phase === 'error')) runCallers.delete(ev.runId);
    },
    defaultModel: () => defaultModel(ctx),
  });
  registerAgentMethods({ ctx, methods: bus(registry).methods, agent, tools, plugins, runCallers });
  const { registerPluginMethods } = await import('./plugin-methods.ts');
  registerPluginMethods({ ctx, methods: bus(registry).methods, plugins });
  agent.onRecovered((receipt, origin) => {
    const reply = origin?.reply as ReplyTarget | undefined;
    if (reply) deliverReply(registry, ctx, receipt, reply);
  });
  // status (CLI, Control UI) says which providers are in effect — or, plainly, how to add one.
  const agentStatus = agent.status!.bind(agent);
  agent.status = async () => {
    const providers = Object.keys(effectiveProviders(ctx.config.current));
    return { ...(await agentStatus()), providers, defaultModel: defaultModel(ctx), ...(providers.length ? {} : { hint: NO_PROVIDER_HELP }) };
  };
  return agent;
};

// ------------------------------------------------------------------ channels

/** A channel's declared capabilities, from its manifest's `provides`. */
function channelCapabilities(plugins: PluginHost, channel: string): ChannelCapabilities | undefined {
  const provides = plugins.manifestOf(channel)?.provides as { channel?: ChannelCapabilities; chunkLimit?: number } | undefined;
  if (!provides) return undefined;
  return provides.channel ?? (typeof provides.chunkLimit === 'number' ? (provides as ChannelCapabilities) : undefined);
}

interface ReplyTarget {
  channel: string;
  chatId: string;
  threadId?: string;
  account?: string;
  replyTo?: string;
}

/** When the run ends, its answer goes to `target` through the durable delivery queue. */
function deliverReply(registry: ServiceRegistry, ctx: KernelContext, receipt: SendReceipt, target: ReplyTarget): void {
  void receipt.done
    .then((result) => {
      if (!result.text || result.status === 'aborted') return;
      registry.get<ChannelsService>('channels').send({ ...target, text: result.text, idempotencyKey: `reply:${receipt.runId}` }, { sessionKey: receipt.sessionKey });
    })
    .catch((err: unknown) => ctx.log.error('reply to channel failed', { sessionKey: receipt.sessionKey, error: (err as Error).message }));
}

/** The agent's answer to a channel message goes back to the chat it came from (or the hook's target). */
function dispatchToAgent(registry: ServiceRegistry, ctx: KernelContext) {
  return (d: Dispatch) => {
    const target: ReplyTarget = d.deliver
      ? parseDeliverTarget(d.deliver)
      : { channel: d.message.channel, chatId: d.message.chatId, threadId: d.message.threadId, account: d.message.account, replyTo: d.message.platformMessageId };
    const receipt = registry.get<AgentService>('agent').send({
      text: d.message.text,
      agentId: d.agentId,
      sessionKey: d.sessionKey,
      runId: d.runId,
      // Kept with the accepted message, so a turn recovered after a restart still answers in the chat.
      origin: { reply: target },
    });
    deliverReply(registry, ctx, receipt, target);
  };
}

export const channelsFactory: ServiceFactory = async (ctx, registry) => {
  const { createChannelsService } = await import('../channels/service.ts');
  const { approvalCommand } = await import('../approvals/chat.ts');
  const plugins = host(registry);
  const service = createChannelsService(ctx, {
    dispatch: dispatchToAgent(registry, ctx),
    bus: bus(registry).broker.port('kernel:channels', { publish: ['>'], subscribe: ['>'] }),
    methods: bus(registry).methods,
    events: bus(registry).fanout,
    secrets: kernelSecrets(ctx),
    capabilities: (channel) => channelCapabilities(plugins, channel),
    command: approvalCommand(
      () => ctx.config.current,
      () => registry.get<Service & { approvals: Approvals }>('approvals').approvals,
      (channel) => channelCapabilities(plugins, channel)?.authenticatedSender === true,
    ),
  });
  for (const id of plugins.pluginsOf('channel')) service.setSender(id, (msg) => plugins.channelSend(id, msg));
  // status: each configured channel, switched on or off, and its plugin's state (WebChat is the gateway's own).
  const queueStatus = service.status!.bind(service);
  service.status = async () => {
    const rows = new Map(plugins.list().map((p) => [p.id, p]));
    const list = Object.entries(ctx.config.current.channels).map(([id, c]) => {
      const row = rows.get(id);
      const state = c.enabled === false ? 'disabled' : id === 'webchat' ? 'running' : (row?.state ?? 'no plugin');
      return { id, state, ...(row?.lastError ? { lastError: row.lastError } : {}) };
    });
    return { ...(await queueStatus()), list };
  };
  return service;
};

/** Webhook ingress: its route must exist before the gateway listens; the agent it dispatches to is looked up per request. */
export const hooksFactory: ServiceFactory = async (ctx, registry) => {
  const { createHooksService } = await import('../channels/hooks.ts');
  return createHooksService({
    config: () => ctx.config.current,
    db: ctx.db,
    clock: ctx.clock,
    log: ctx.log.child({ service: 'hooks' }),
    audit: ctx.audit,
    secrets: kernelSecrets(ctx),
    dispatch: (d) => {
      if (!registry.find('agent')) throw new CarapaceError('UNAVAILABLE', 'the agent runtime is still starting');
      dispatchToAgent(registry, ctx)(d);
    },
  });
};

// ------------------------------------------------------------------ heartbeat

export const heartbeatFactory: ServiceFactory = async (ctx, registry) => {
  const { createHeartbeat } = await import('../scheduler/heartbeat.ts');
  const agentId = 'main';
  const heartbeat = createHeartbeat({
    timers: systemTimers,
    runTurn: runTurn(registry),
    deliver: deliver(registry),
    readChecklist: () => {
      const file = join(agentWorkspace(ctx.paths, ctx.config.current, agentId, undefined), 'HEARTBEAT.md');
      return existsSync(file) ? readFileSync(file, 'utf8') : null;
    },
    settings: () => agentSettings(ctx.config.current, agentId).heartbeat ?? {},
    agentId,
    log: ctx.log.child({ service: 'heartbeat' }),
  });
  return { name: 'heartbeat', start: () => heartbeat.start(), stop: () => heartbeat.stop() };
};

