import type { ToolDef, ToolContext, ToolResult } from '../../../core/plugin-api.ts';
import { checkCommand, CommandRefused, type AllowEntry } from './command.ts';
import { probeSandbox, runSandboxed } from './sandbox.ts';

// The `exec` tool. It runs kernel-side (not in an isolate or worker): starting
// a process needs child_process, which no sandboxed plugin may hold, and a
// worker thread would share the gateway's process and privileges anyway — the
// security boundary is bubblewrap around the command, not the JS around bwrap.

export interface ExecConfig {
  /** argv patterns (see command.ts); null = any program (still sandboxed; approvals still apply). */
  allow: AllowEntry[] | null;
  /** Granted by the user's config only, never by the model's input. */
  network: boolean;
  timeoutMs: number;
  maxOutputBytes: number;
}

export const EXEC_DEFAULTS: ExecConfig = { allow: null, network: false, timeoutMs: 30_000, maxOutputBytes: 64 * 1024 };

export interface ExecDeps {
  workspace: string;
  /** Paths hidden inside the sandbox: the state directory (keys, secrets, db). */
  hide: string[];
  config: () => Partial<ExecConfig>;
  bwrap?: string;
}

export const execToolDef: ToolDef = {
  name: 'exec',
  description:
    'Run a program in a sandbox whose only writable directory is the workspace (no network unless the user granted it). ' +
    'Give argv as an array, e.g. ["ls", "-la"]; there is no shell, so pipes, redirects, $(...) and globs are not available.',
  input: {
    type: 'object',
    properties: {
      argv: { type: 'array', items: { type: 'string' }, minItems: 1, maxItems: 256 },
      command: { type: 'string', maxLength: 4096, description: 'a plain command line (no shell syntax); prefer argv' },
      timeoutMs: { type: 'integer', minimum: 100 },
    },
    additionalProperties: false,
  },
};

function fail(content: string, data?: unknown): ToolResult {
  return { content, isError: true, data };
}

export function createExecTool(deps: ExecDeps): ToolDef & { run(input: unknown, ctx: ToolContext): Promise<ToolResult> } {
  return {
    ...execToolDef,
    async run(input) {
      const cfg = { ...EXEC_DEFAULTS, ...deps.config() };
      const sandbox = await probeSandbox(deps.bwrap);
      if (!sandbox.ok || !sandbox.bwrap) return fail(sandbox.reason ?? 'exec is disabled', { refused: 'sandbox-unavailable' });
      if (typeof input !== 'object' || input === null) return fail('exec: input must be an object with argv or command');
      const i = input as { argv?: unknown; command?: unknown; timeoutMs?: unknown };
      let checked;
      try {
        checked = checkCommand(i, cfg.allow);
      } catch (err) {
        if (err instanceof CommandRefused) return fail(err.message, { refused: err.reason });
        throw err;
      }
      const asked = typeof i.timeoutMs === 'number' && Number.isFinite(i.timeoutMs) ? i.timeoutMs : cfg.timeoutMs;
      const timeoutMs = Math.max(100, Math.min(asked, cfg.timeoutMs));
      const r = await runSandboxed({
        argv: checked.argv,
        workspace: deps.workspace,
        network: cfg.network,
        timeoutMs,
        maxOutputBytes: cfg.maxOutputBytes,
        hide: deps.hide,
        bwrap: sandbox.bwrap,
      });
      const status = r.timedOut
        ? `killed after the ${timeoutMs} ms time limit`
        : r.signal
          ? `killed by ${r.signal}`
          : `exit code ${r.exitCode}`;
      const parts = [`[${status}${r.truncated ? '; output truncated' : ''}]`];
      if (r.stdout) parts.push(r.stdout);
      if (r.stderr) parts.push(`[stderr]\n${r.stderr}`);
      return {
        content: parts.join('\n'),
        isError: r.timedOut || r.exitCode !== 0,
        data: { ...r, argv: checked.argv },
      };
    },
  };
}
