// The agent's ToolRunner in the gateway: plugin tools run in their sandboxes
// through the plugin host; the few kernel tools (exec, cron) run here because
// their boundary is elsewhere (bubblewrap; the agent-scoped cron capability).
// Every call is audited with its (redacted, truncated) input and its outcome.
import type { ToolDef, ToolResult, ToolContext } from '../plugin-api.ts';
import type { ToolRunner } from '../agent/types.ts';
import type { AuditLog } from '../audit.ts';
import { defangDeep } from '../secrets/placeholder.ts';

export interface KernelTool extends ToolDef {
  run(input: unknown, ctx: ToolContext): Promise<ToolResult | string>;
}

export interface ToolHost {
  listTools(): { name: string; description: string; input: Record<string, unknown>; plugin: string }[];
  invokeTool(name: string, input: unknown, ctx: ToolContext): Promise<ToolResult>;
}

const AUDIT_INPUT_CHARS = 2000;

function preview(input: unknown): unknown {
  const text = JSON.stringify(input ?? null);
  return text.length <= AUDIT_INPUT_CHARS ? input : { truncated: true, preview: text.slice(0, AUDIT_INPUT_CHARS) };
}

export function createToolRunner(deps: { host: ToolHost; kernelTools: () => KernelTool[]; audit: AuditLog }): ToolRunner {
  const kernel = () => new Map(deps.kernelTools().map((t) => [t.name, t]));
  return {
    list() {
      const own = deps.kernelTools().map(({ name, description, input }) => ({ name, description, input }));
      const names = new Set(own.map((t) => t.name));
      return [...own, ...deps.host.listTools().filter((t) => !names.has(t.name)).map(({ name, description, input }) => ({ name, description, input }))];
    },
    async run(name, input, ctx) {
      const toolCtx: ToolContext = { agentId: ctx.agentId, sessionKey: ctx.sessionKey, runId: ctx.runId };
      // Tool inputs are written by the model, which others can steer: no live secret placeholder reaches a plugin.
      input = defangDeep(input);
      const tool = kernel().get(name);
      let outcome: ToolResult | string | undefined;
      let failure: string | undefined;
      try {
        outcome = tool ? await tool.run(input, toolCtx) : await deps.host.invokeTool(name, input, toolCtx);
        return outcome;
      } catch (err) {
        failure = (err as Error).message;
        throw err;
      } finally {
        const isError = failure !== undefined || (typeof outcome === 'object' && outcome?.isError === true);
        deps.audit.append({
          actor: `agent:${ctx.agentId}`,
          action: 'tool.call',
          target: name,
          sessionKey: ctx.sessionKey,
          data: { runId: ctx.runId, input: preview(input), ok: !isError, ...(failure ? { error: failure.slice(0, 500) } : {}) },
        });
      }
    },
  };
}
