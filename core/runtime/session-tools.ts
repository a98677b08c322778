// Session tools (OpenClaw's sessions_list / sessions_history / sessions_send): how
// agents hand work to each other. Kernel tools, because they act on the agent
// runtime itself; the calling agent's tool policy decides who may use them.
import type { AgentService } from '../agent/service.ts';
import type { ToolContext, ToolResult } from '../plugin-api.ts';
import type { KernelTool } from './tools.ts';
import { isValidSessionKey } from '../sessions/session-key.ts';

const MAX_WAIT_MS = 120_000;

function fail(content: string): ToolResult {
  return { content, isError: true };
}

function textOf(message: { content: { type: string; text?: string; name?: string }[] }): string {
  return message.content.map((p) => (p.type === 'text' ? p.text : p.type === 'tool_call' ? `[tool ${p.name}]` : '[tool result]')).join(' ');
}

export function createSessionTools(agent: () => AgentService): KernelTool[] {
  return [
    {
      name: 'sessions_list',
      description: 'List recent sessions (conversations) across agents, newest first, with their keys.',
      input: { type: 'object', properties: { limit: { type: 'integer', minimum: 1, maximum: 100 } }, additionalProperties: false },
      async run(input) {
        const { limit = 20 } = input as { limit?: number };
        const rows = agent().sessions(limit);
        return { content: rows.map((s) => `${s.sessionKey} (agent ${s.agentId}, updated ${new Date(s.updatedAt).toISOString()})`).join('\n') || 'no sessions', data: rows };
      },
    },
    {
      name: 'sessions_history',
      description: "Read the latest messages of a session's transcript.",
      input: {
        type: 'object',
        properties: { sessionKey: { type: 'string', maxLength: 512 }, limit: { type: 'integer', minimum: 1, maximum: 100 } },
        required: ['sessionKey'],
        additionalProperties: false,
      },
      async run(input) {
        const { sessionKey, limit = 20 } = input as { sessionKey: string; limit?: number };
        if (!isValidSessionKey(sessionKey)) return fail(`"${sessionKey}" is not a session key (see sessions_list)`);
        const messages = agent().history(sessionKey, { limit });
        return { content: messages.map((m) => `${m.message.role}: ${textOf(m.message as never).slice(0, 2000)}`).join('\n') || 'the session is empty' };
      },
    },
    {
      name: 'sessions_send',
      description:
        'Send a message into another session (or to another agent by id) and wait for its reply. Use it to hand work to another agent.',
      input: {
        type: 'object',
        properties: {
          sessionKey: { type: 'string', maxLength: 512 },
          agentId: { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,63}$' },
          text: { type: 'string', minLength: 1, maxLength: 32_000 },
          waitMs: { type: 'integer', minimum: 0, maximum: MAX_WAIT_MS },
        },
        required: ['text'],
        additionalProperties: false,
      },
      async run(input, ctx: ToolContext) {
        const { sessionKey, agentId, text, waitMs = 60_000 } = input as { sessionKey?: string; agentId?: string; text: string; waitMs?: number };
        if (sessionKey === undefined && agentId === undefined) return fail('give sessionKey or agentId');
        if (sessionKey !== undefined && !isValidSessionKey(sessionKey)) return fail(`"${sessionKey}" is not a session key (see sessions_list)`);
        if (sessionKey === ctx.sessionKey) return fail('a session cannot send to itself: it would wait for its own turn');
        let receipt;
        try {
          receipt = agent().send({ text: `[from ${ctx.sessionKey}] ${text}`, sessionKey, agentId });
        } catch (err) {
          return fail((err as Error).message);
        }
        if (waitMs === 0) return { content: `sent to ${receipt.sessionKey} (run ${receipt.runId}); not waiting for the reply` };
        const timeout = new Promise<null>((resolve) => setTimeout(resolve, waitMs, null).unref());
        const result = await Promise.race([receipt.done, timeout]);
        if (!result) return { content: `sent to ${receipt.sessionKey}; no reply within ${waitMs} ms (run ${receipt.runId} goes on)` };
        return result.status === 'done' ? { content: result.text } : fail(`the other session's run ended with ${result.status}: ${result.text}`);
      },
    },
  ];
}
