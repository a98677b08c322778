// The agent service: sessions, the per-session queue, runs and their events.
// Built from the kernel context plus the seams the bus and plugin host provide
// (models, tools, approver, events); the bus methods (chat.send, chat.abort,
// chat.history, sessions.*) are thin calls onto this object.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { agentSettings, getPath, type AgentSettings } from '../config/config.ts';
import type { KernelContext, Service } from '../kernel.ts';
import { CarapaceError } from '../errors.ts';
import { isValidSessionKey, agentOfSessionKey } from '../sessions/session-key.ts';
import { agentWorkspace, defaultAgentId, resolveAgentId, type Route } from './bindings.ts';
import { DEFAULT_LIMITS, runAgent, type Limits } from './loop.ts';
import { SessionQueues } from './queue.ts';
import { discoverSkills, systemEnvironment, type Environment, type SkillInfo } from './skills.ts';
import { createAgentStore, type AgentStore, type StoredMessage, type SessionRow } from './store.ts';
import { parseModelRef, type AgentEvent, type Approver, type EventSink, type ModelClient, type ModelRef, type RunResult, type ToolRunner } from './types.ts';
import { createWorkspaceReader } from './workspace.ts';

export interface AgentServiceDeps {
  models: ModelClient;
  tools: ToolRunner;
  approver?: Approver | null;
  events: EventSink;
  /** Sessions running at once (default 4). */
  maxConcurrent?: number;
  /** Injectable for tests: backoff sleeps and jitter. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  random?: () => number;
  limits?: Partial<Limits>;
  environment?: Environment;
  /** The model for agents that configure none (e.g. picked from the environment's provider). */
  defaultModel?: () => string | null;
}

export interface SendParams {
  text: string;
  sessionKey?: string;
  agentId?: string;
  /** A run id already promised to a caller (webhook ingress); a fresh one otherwise. */
  runId?: string;
  /** Kept with the accepted message and handed back if the turn is recovered after a restart. */
  origin?: Record<string, unknown>;
}

export interface SendReceipt {
  runId: string;
  sessionKey: string;
  /** Resolves when the run ends (never rejects). */
  done: Promise<RunResult>;
}

export interface AgentService extends Service {
  readonly name: 'agent';
  readonly store: AgentStore;
  send(params: SendParams): SendReceipt;
  abort(runId: string): boolean;
  /** Accepted and not yet ended (queued or running). */
  isActive(runId: string): boolean;
  history(sessionKey: string, opts?: { limit?: number; before?: number }): StoredMessage[];
  reset(sessionKey: string): boolean;
  sessions(limit?: number): SessionRow[];
  /** Every skill of an agent with its eligibility and, if skipped, the reason. */
  skills(agentId?: string): SkillInfo[];
  /** Which agent a channel message belongs to (config bindings). */
  resolveAgent(route: Route): string;
  /** Called at start for each accepted message whose turn a restart interrupted before it began, now queued again. */
  onRecovered(listener: (receipt: SendReceipt, origin: Record<string, unknown> | undefined) => void): void;
}

const MAX_TEXT = 200_000;

export function createAgentService(ctx: KernelContext, deps: AgentServiceDeps): AgentService {
  const store = createAgentStore(ctx.db);
  const queues = new SessionQueues(deps.maxConcurrent ?? 4);
  const running = new Map<string, AbortController>();
  const workspace = createWorkspaceReader();
  const limits: Limits = { ...DEFAULT_LIMITS, ...deps.limits };
  const environment = deps.environment ?? systemEnvironment((p) => Boolean(getPath(ctx.config.current, p.split('.'))));
  const sleep = deps.sleep ?? defaultSleep;
  const random = deps.random ?? Math.random;
  const skillCache = new Map<string, { at: number; skills: SkillInfo[] }>();
  let stopping = false;

  const knownAgent = (id: string) => ctx.config.current.agents.list.some((a) => a.id === id);

  function settingsOf(agentId: string): AgentSettings & { id: string; name?: string } {
    const own = ctx.config.current.agents.list.find((a) => a.id === agentId);
    return { ...agentSettings(ctx.config.current, agentId), ...(own?.name ? { name: own.name } : {}) };
  }

  function workspaceOf(agentId: string): string {
    return agentWorkspace(ctx.paths, ctx.config.current, agentId, settingsOf(agentId).workspace);
  }

  function skillsOf(agentId: string): SkillInfo[] {
    // Re-scanned at most every few seconds: a turn should not walk 100 folders.
    const hit = skillCache.get(agentId);
    if (hit && Date.now() - hit.at < 5000) return hit.skills;
    const skills = discoverSkills(
      [
        { dir: join(workspaceOf(agentId), 'skills'), source: 'workspace' },
        { dir: join(ctx.paths.root, 'skills'), source: 'shared' },
      ],
      environment,
    );
    skillCache.set(agentId, { at: Date.now(), skills });
    return skills;
  }

  function chainOf(settings: AgentSettings): ModelRef[] {
    const m = settings.model ?? deps.defaultModel?.() ?? undefined;
    if (!m) throw new CarapaceError('UNAVAILABLE', 'No model is configured for this agent: set agents.defaults.model (e.g. "anthropic/claude-sonnet-4-6"), or set ANTHROPIC_API_KEY, OPENAI_API_KEY or OPENAI_BASE_URL (a local Ollama) and restart to use a default.', { retryable: false });
    const refs = typeof m === 'string' ? [m] : [m.primary, ...(m.fallbacks ?? [])];
    return refs.map(parseModelRef);
  }

  const recoveredListeners: ((receipt: SendReceipt, origin: Record<string, unknown> | undefined) => void)[] = [];
  // What the last process left, taken before anything can reach this service (other
  // services start before this one, and a message accepted now is not a leftover).
  const interrupted = store.closeInterruptedRuns(ctx.clock.now());
  const recoverable = store.pendingInputs();

  const service: AgentService = {
    name: 'agent',
    store,

    send(params) {
      return send(params, false);
    },
    onRecovered(listener) {
      recoveredListeners.push(listener);
    },

    isActive: (runId) => running.has(runId),
    abort(runId) {
      const ctl = running.get(runId);
      if (!ctl) return false;
      ctl.abort();
      return true;
    },
    history: (sessionKey, opts = {}) => store.history(sessionKey, opts.limit, opts.before),
    reset: (sessionKey) => store.resetSession(sessionKey, ctx.clock.now()),
    sessions: (limit) => store.listSessions(limit),
    skills: (agentId) => skillsOf(agentId ?? defaultAgentId(ctx.config.current)),
    resolveAgent: (route) => resolveAgentId(ctx.config.current, route),

    start() {
      if (interrupted) ctx.log.warn('closed agent runs interrupted by the last stop', { runs: interrupted });
      for (const input of recoverable) {
        try {
          const receipt = send({ text: input.text, sessionKey: input.sessionKey, agentId: input.agentId, runId: input.runId, origin: input.origin }, true);
          ctx.log.info('accepted message recovered after a restart', { runId: input.runId, sessionKey: input.sessionKey });
          for (const l of recoveredListeners) l(receipt, input.origin);
        } catch (err) {
          store.dropInput(input.runId);
          ctx.log.error('an accepted message could not be run after a restart and was dropped', { runId: input.runId, sessionKey: input.sessionKey, error: (err as Error).message });
          ctx.audit.append({ actor: 'kernel:agent', action: 'agent.input.dropped', sessionKey: input.sessionKey, data: { runId: input.runId, reason: (err as Error).message } });
        }
      }
    },
    async stop() {
      stopping = true;
      for (const ctl of running.values()) ctl.abort();
    },
    status() {
      const agents = ctx.config.current.agents.list.map((a) => {
        const skills = skillsOf(a.id);
        return {
          id: a.id,
          skills: skills.filter((s) => s.eligible).map((s) => s.name),
          skipped: skills.filter((s) => !s.eligible).map((s) => ({ name: s.name, reason: s.reason })),
        };
      });
      return { running: running.size, activeSessions: queues.active, sessions: store.countSessions(), agents };
    },
  };

  function send(params: SendParams, recovered: boolean): SendReceipt {
    if (stopping) throw new CarapaceError('UNAVAILABLE', 'the gateway is stopping');
    if (typeof params.text !== 'string' || params.text.trim() === '') throw new CarapaceError('INVALID_REQUEST', 'text must be a non-empty string', { pointer: '/params/text' });
    if (params.text.length > MAX_TEXT) throw new CarapaceError('PAYLOAD_TOO_LARGE', `text is longer than ${MAX_TEXT} characters`);
    if (params.sessionKey !== undefined && !isValidSessionKey(params.sessionKey)) throw new CarapaceError('INVALID_REQUEST', 'sessionKey is not a valid session key', { pointer: '/params/sessionKey' });
    const keyAgent = params.sessionKey ? agentOfSessionKey(params.sessionKey) : null;
    const agentId = params.agentId ?? keyAgent ?? defaultAgentId(ctx.config.current);
    if (!knownAgent(agentId)) throw new CarapaceError('NOT_FOUND', `no agent "${agentId}" in agents.list`);
    if (keyAgent && keyAgent !== agentId) throw new CarapaceError('INVALID_REQUEST', `session ${params.sessionKey} belongs to agent ${keyAgent}, not ${agentId}`, { pointer: '/params/sessionKey' });
    const sessionKey = params.sessionKey ?? `agent:${agentId}:main`;
    const settings = settingsOf(agentId);
    const chain = chainOf(settings);
    const runId = params.runId ?? randomUUID();
    if (!recovered) store.accept({ runId, sessionKey, agentId, text: params.text, origin: params.origin, acceptedAt: ctx.clock.now() });
    const abort = new AbortController();
    running.set(runId, abort);
    let seq = 0;
    const emit = (stream: AgentEvent['stream'], data: Record<string, unknown>) => {
      try {
        deps.events({ runId, sessionKey, seq: seq++, stream, data });
      } catch (err) {
        ctx.log.warn('agent event sink failed', { err });
      }
    };
    emit('lifecycle', { phase: 'queued', agentId, position: queues.depth(sessionKey) });

    const done = new Promise<RunResult>((resolve) => {
      queues.enqueue(sessionKey, async () => {
        try {
          await job();
        } catch (err) {
          // runAgent handles its own failures; this is the store itself failing.
          ctx.log.error('agent run could not start or finish', { runId, err });
          // Not re-run at the next start: a message that breaks the store would loop forever.
          store.dropInput(runId);
          running.delete(runId);
          resolve({ ...abortedBeforeStart(runId, sessionKey, () => {}), status: 'error', reason: 'internal', text: 'The run failed because of an internal error; it is in the gateway log.' });
        }
      });
      async function job() {
        const now = ctx.clock.now();
        const idle = ctx.config.current.session.idleResetMinutes;
        const session = store.openSession(sessionKey, agentId, now, idle ? idle * 60_000 : null);
        if (session.renewed) emit('lifecycle', { phase: 'session_reset', reason: 'idle', idleResetMinutes: idle });
        // A user's abort forgets the message; a stopping gateway keeps it for the next start.
        if (abort.signal.aborted && !stopping) store.dropInput(runId);
        const result = abort.signal.aborted
          ? abortedBeforeStart(runId, sessionKey, emit)
          : await runAgent(
              {
                runId,
                sessionKey,
                sessionId: session.sessionId,
                agentId,
                ...(settings.name ? { agentName: settings.name } : {}),
                text: params.text,
                settings,
                chain,
                workspaceDir: workspaceOf(agentId),
                skills: skillsOf(agentId),
                signal: abort.signal,
                emit,
              },
              {
                store,
                models: deps.models,
                tools: deps.tools,
                approver: deps.approver ?? null,
                audit: ctx.audit,
                log: ctx.log,
                now: () => ctx.clock.now(),
                sleep,
                random,
                limits,
                workspaceSection: (dir) => workspace.section(dir),
              },
            );
        running.delete(runId);
        ctx.log.info('agent run ended', { runId, sessionKey, agentId, status: result.status, reason: result.reason, steps: result.steps, model: result.model, ms: ctx.clock.now() - now });
        resolve(result);
      }
    });
    return { runId, sessionKey, done };
  }

  return service;
}

function abortedBeforeStart(runId: string, sessionKey: string, emit: (s: AgentEvent['stream'], d: Record<string, unknown>) => void): RunResult {
  const result: RunResult = { runId, sessionKey, status: 'aborted', text: 'The run was aborted before it started.', reason: 'aborted', steps: 0, usage: { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0 }, costUsd: 0, model: null };
  emit('lifecycle', { phase: 'end', status: 'aborted', reason: 'aborted', text: result.text });
  return result;
}

function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
