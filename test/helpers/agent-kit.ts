// Builds an agent service on a temp home with the real store, the real provider
// plugins (in-process) and loopback fakes: what the agent tests and bench share.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempHome, type TempHome } from './home.ts';
import { ensureHome } from '../../core/home.ts';
import { openDb, type Db } from '../../core/store/db.ts';
import { createAuditLog } from '../../core/audit.ts';
import { createLogHub } from '../../core/log/logger.ts';
import { defaultConfig, mergeDefaults, validateConfig, type Config } from '../../core/config/config.ts';
import type { LiveConfig } from '../../core/config/live.ts';
import type { KernelContext } from '../../core/kernel.ts';
import type { Clock } from '../../core/clock.ts';
import { createAgentService, type AgentService, type AgentServiceDeps } from '../../core/agent/service.ts';
import { createDirectModelClient, secretFetch } from '../../core/agent/direct-models.ts';
import type { AgentEvent, ToolRunner } from '../../core/agent/types.ts';
import type { ToolDef, ToolResult } from '../../core/plugin-api.ts';

export interface FakeClock extends Clock {
  set(ms: number): void;
  advance(ms: number): void;
}

export function fakeClock(start = Date.UTC(2026, 0, 15, 12, 0, 0)): FakeClock {
  let t = start;
  return { now: () => t, set: (ms) => void (t = ms), advance: (ms) => void (t += ms) };
}

export function staticConfig(raw: Record<string, unknown>): LiveConfig {
  validateConfig(raw);
  const current = mergeDefaults(defaultConfig(), raw) as Config;
  return { current, raw, onChange: () => () => {}, addCheck: () => () => {}, set: () => {}, reload: () => true, close: () => {} };
}

export function kernelContext(home: TempHome, raw: Record<string, unknown>, clock: Clock = fakeClock(), db?: Db): KernelContext {
  ensureHome(home.paths);
  const theDb = db ?? openDb(home.paths.db);
  const hub = createLogHub({ stream: null, level: 'fatal' });
  return {
    paths: home.paths,
    config: staticConfig(raw),
    log: hub.logger,
    logHub: hub,
    db: theDb,
    audit: createAuditLog(theDb, { now: () => clock.now() }),
    identity: {} as KernelContext['identity'],
    clock,
    version: 'test',
    startedAt: clock.now(),
  };
}

export type ToolImpl = ToolDef & { run(input: any, ctx: { sessionKey: string; runId: string; signal: AbortSignal }): Promise<ToolResult | string> | ToolResult | string };

/** A ToolRunner over plain functions, recording every call. */
export function toolRunner(tools: ToolImpl[]): ToolRunner & { calls: { name: string; input: unknown; sessionKey: string }[] } {
  const calls: { name: string; input: unknown; sessionKey: string }[] = [];
  return {
    calls,
    list: () => tools.map(({ name, description, input }) => ({ name, description, input })),
    async run(name, input, ctx) {
      calls.push({ name, input, sessionKey: ctx.sessionKey });
      const t = tools.find((x) => x.name === name);
      if (!t) throw new Error(`no tool ${name}`);
      return t.run(input, ctx);
    },
  };
}

export interface Kit {
  home: TempHome;
  ctx: KernelContext;
  agent: AgentService;
  events: AgentEvent[];
  clock: FakeClock;
  sleeps: number[];
  close(): void;
}

export const SECRETS: Record<string, string> = { ANTHROPIC_API_KEY: 'sk-ant-kit', OPENAI_API_KEY: 'sk-openai-kit' };

/** An agent service whose providers point at the given fakes (by provider id → base URL). */
export function agentKit(opts: {
  config: Record<string, unknown>;
  tools?: ToolImpl[];
  approver?: AgentServiceDeps['approver'];
  home?: TempHome;
  clock?: FakeClock;
  deps?: Partial<AgentServiceDeps>;
  /** Called with the service before start() (e.g. to listen for recovered turns). */
  beforeStart?: (agent: ReturnType<typeof createAgentService>) => void;
}): Kit {
  const home = opts.home ?? tempHome('agent');
  const clock = opts.clock ?? fakeClock();
  const ctx = kernelContext(home, opts.config, clock);
  const events: AgentEvent[] = [];
  const sleeps: number[] = [];
  const models = createDirectModelClient({ providers: ctx.config.current.providers, webFetch: secretFetch((n) => SECRETS[n]) });
  const agent = createAgentService(ctx, {
    models,
    tools: toolRunner(opts.tools ?? []),
    approver: opts.approver ?? null,
    events: (e) => events.push(e),
    sleep: async (ms) => void sleeps.push(ms),
    random: () => 0.5,
    environment: { env: {}, platform: 'linux', hasBin: () => false, configHas: () => false },
    ...opts.deps,
  });
  opts.beforeStart?.(agent);
  agent.start?.();
  return {
    home,
    ctx,
    agent,
    events,
    clock,
    sleeps,
    close: () => {
      ctx.db.close();
      if (!opts.home) home.cleanup();
    },
  };
}

export function writeWorkspace(dir: string, files: Record<string, string>): void {
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
}
