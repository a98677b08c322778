// The bus methods of the agent runtime (protocol.md "Methods"): chat, sessions,
// and tools. Each handler validates, checks, and delegates.
import { randomUUID } from 'node:crypto';
import type { KernelContext } from '../kernel.ts';
import type { Caller, MethodRegistry } from '../bus/types.ts';
import type { AgentService } from '../agent/service.ts';
import type { AgentEvent, ToolRunner } from '../agent/types.ts';
import type { PluginHost } from '../plugins/host.ts';
import { CarapaceError } from '../errors.ts';
import { agentSettings } from '../config/config.ts';
import { decideTool } from '../agent/policy.ts';
import { isValidSessionKey } from '../sessions/session-key.ts';

const sessionKey = { type: 'string', minLength: 1, maxLength: 512 } as const;
const agentId = { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,63}$' } as const;

export interface AgentMethodsDeps {
  ctx: KernelContext;
  methods: MethodRegistry;
  agent: AgentService;
  tools: ToolRunner;
  plugins: PluginHost;
  /** runId → the socket that started it, which receives that run's `agent` events. */
  runCallers: Map<string, (ev: AgentEvent) => void>;
}

function checkSessionKey(key: unknown): void {
  if (key !== undefined && !isValidSessionKey(key)) throw new CarapaceError('INVALID_REQUEST', 'sessionKey is not a valid session key', { pointer: '/params/sessionKey' });
}

export function registerAgentMethods(deps: AgentMethodsDeps): void {
  const { methods, agent, tools, plugins, ctx } = deps;

  methods.register<{ text: string; sessionKey?: string; agentId?: string }, { runId: string; sessionKey: string }>('chat.send', {
    scope: 'operator.write',
    idempotent: true,
    params: {
      type: 'object',
      properties: { text: { type: 'string', minLength: 1, maxLength: 200_000 }, sessionKey, agentId, idempotencyKey: { type: 'string' } },
      required: ['text', 'idempotencyKey'],
      additionalProperties: false,
    },
    handler(params, caller) {
      checkSessionKey(params.sessionKey);
      // Followed before it is sent: the run emits `queued` (and often `start`) before send returns.
      const runId = randomUUID();
      const unfollow = followRun(runId, caller);
      try {
        const receipt = agent.send({ text: params.text, sessionKey: params.sessionKey, agentId: params.agentId, runId });
        return { runId: receipt.runId, sessionKey: receipt.sessionKey };
      } catch (err) {
        unfollow();
        throw err;
      }
    },
    // A client that lost its connection retries with the same key: the run goes on, and its events now go to the new connection.
    replayed(result, caller) {
      if (agent.isActive(result.runId)) followRun(result.runId, caller);
    },
  });

  /** Stream a run's events to the caller that started (or re-attached to) it, until it disconnects. */
  function followRun(runId: string, caller: Caller): () => void {
    const emit = (ev: AgentEvent) => caller.emit('agent', ev);
    const unfollow = () => deps.runCallers.get(runId) === emit && deps.runCallers.delete(runId);
    deps.runCallers.set(runId, emit);
    caller.signal.addEventListener('abort', unfollow, { once: true });
    return unfollow;
  }

  methods.register<{ sessionKey: string; limit?: number; before?: number }>('chat.history', {
    scope: 'operator.read',
    params: {
      type: 'object',
      properties: { sessionKey, limit: { type: 'integer', minimum: 1, maximum: 1000 }, before: { type: 'integer', minimum: 0 } },
      required: ['sessionKey'],
      additionalProperties: false,
    },
    handler(params) {
      checkSessionKey(params.sessionKey);
      return { messages: agent.history(params.sessionKey, { limit: params.limit, before: params.before }) };
    },
  });

  methods.register<{ runId: string }>('chat.abort', {
    scope: 'operator.write',
    params: { type: 'object', properties: { runId: { type: 'string', minLength: 1, maxLength: 128 } }, required: ['runId'], additionalProperties: false },
    handler: (params) => ({ aborted: agent.abort(params.runId) }),
  });

  methods.register<{ limit?: number }>('sessions.list', {
    scope: 'operator.read',
    params: { type: 'object', properties: { limit: { type: 'integer', minimum: 1, maximum: 1000 } }, additionalProperties: false },
    handler: (params) => ({ sessions: agent.sessions(params.limit) }),
  });

  methods.register<{ sessionKey: string }>('sessions.reset', {
    scope: 'operator.write',
    params: { type: 'object', properties: { sessionKey }, required: ['sessionKey'], additionalProperties: false },
    handler(params, caller) {
      checkSessionKey(params.sessionKey);
      const reset = agent.reset(params.sessionKey);
      ctx.audit.append({ actor: `device:${caller.deviceId}`, action: 'session.reset', target: params.sessionKey, sessionKey: params.sessionKey });
      return { reset };
    },
  });

  methods.register<{ agentId?: string }>('tools.list', {
    scope: 'operator.read',
    params: { type: 'object', properties: { agentId }, additionalProperties: false },
    async handler(params) {
      const id = params.agentId ?? 'main';
      const policy = agentSettings(ctx.config.current, id).tools;
      const owners = new Map(plugins.listTools().map((t) => [t.name, t.plugin]));
      const list = await tools.list(id);
      return {
        agentId: id,
        tools: list.map((t) => {
          const d = decideTool(policy, t.name);
          return { ...t, plugin: owners.get(t.name) ?? 'kernel', allowed: d.allowed, requiresApproval: d.allowed && d.approval };
        }),
      };
    },
  });

  methods.register<{ tool: string; input?: unknown; agentId?: string; sessionKey?: string }>('tools.invoke', {
    scope: 'operator.admin',
    params: {
      type: 'object',
      properties: { tool: { type: 'string', minLength: 1, maxLength: 128 }, input: {}, agentId, sessionKey, idempotencyKey: { type: 'string' } },
      required: ['tool'],
      additionalProperties: false,
    },
    async handler(params, caller) {
      checkSessionKey(params.sessionKey);
      const id = params.agentId ?? 'main';
      // The agent's own policy applies; approval is implied, the caller being an admin.
      const d = decideTool(agentSettings(ctx.config.current, id).tools, params.tool);
      if (!d.allowed) throw new CarapaceError('FORBIDDEN', d.reason);
      if (!(await tools.list(id)).some((t) => t.name === params.tool)) throw new CarapaceError('NOT_FOUND', `no tool ${params.tool}`);
      return tools.run(params.tool, params.input ?? {}, {
        agentId: id,
        sessionKey: params.sessionKey ?? `agent:${id}:main`,
        runId: `invoke:${caller.deviceId.slice(0, 12)}:${Date.now()}`,
        signal: caller.signal,
      });
    },
  });
}
