// The agent runtime's seams: how it reaches models, tools, approvals and clients.
// The plugin host and the bus implement these; tests and the bench use the
// in-process implementations next to them.
import type { CompletionEvent, CompletionRequest, CompletionResult, ModelInfo, ProviderErrorInfo, ToolDef, ToolResult } from '../plugin-api.ts';

export interface ModelRef {
  provider: string;
  model: string;
}

/** `provider/model`; the model part may itself contain slashes (OpenRouter ids). */
export function parseModelRef(ref: string): ModelRef {
  const i = ref.indexOf('/');
  if (i <= 0 || i === ref.length - 1) throw new Error(`model ref "${ref}" must be provider/model`);
  return { provider: ref.slice(0, i), model: ref.slice(i + 1) };
}

export const refString = (r: ModelRef): string => `${r.provider}/${r.model}`;

export interface ModelClient {
  /** Context window, output cap and price for a model (defaults when the provider does not know it). */
  modelInfo(ref: ModelRef): Promise<ModelInfo>;
  /** Throws an error carrying `info: ProviderErrorInfo` (see providerErrorOf) on failure. */
  complete(ref: ModelRef, request: CompletionRequest, onEvent: (e: CompletionEvent) => void, signal?: AbortSignal): Promise<CompletionResult>;
}

export class ModelCallError extends Error {
  readonly info: ProviderErrorInfo;
  constructor(info: ProviderErrorInfo) {
    super(info.message);
    this.name = 'ModelCallError';
    this.info = info;
  }
}

const KINDS = new Set(['rate_limit', 'overloaded', 'server', 'timeout', 'network', 'auth', 'bad_request', 'aborted']);

/** Whatever a ModelClient threw, as a classified provider error. */
export function providerErrorOf(err: unknown): ProviderErrorInfo {
  const e = err as { info?: ProviderErrorInfo; kind?: string; name?: string; message?: string } | null;
  if (e?.info && KINDS.has(e.info.kind)) return e.info;
  if (e && typeof e.kind === 'string' && KINDS.has(e.kind)) return e as unknown as ProviderErrorInfo;
  if (e?.name === 'AbortError') return { kind: 'aborted', message: 'the request was aborted' };
  return { kind: 'network', message: e?.message ?? String(err) };
}

export interface ToolCallContext {
  agentId: string;
  sessionKey: string;
  runId: string;
  signal: AbortSignal;
}

export interface ToolRunner {
  /** The tools the plugin host offers this agent (before the agent's policy filters them). */
  list(agentId: string): Promise<ToolDef[]> | ToolDef[];
  run(name: string, input: unknown, ctx: ToolCallContext): Promise<ToolResult | string>;
}

export interface ApprovalRequest {
  agentId: string;
  sessionKey: string;
  runId: string;
  tool: string;
  input: unknown;
}

export interface Approver {
  request(req: ApprovalRequest, signal: AbortSignal): Promise<{ approved: boolean; reason?: string }>;
}

export type AgentStream = 'lifecycle' | 'assistant' | 'tool';

/** protocol.md `agent` event payload. */
export interface AgentEvent {
  runId: string;
  sessionKey: string;
  seq: number;
  stream: AgentStream;
  data: Record<string, unknown>;
}

export type EventSink = (event: AgentEvent) => void;

export type RunStatus = 'done' | 'stopped' | 'error' | 'aborted';

export interface RunResult {
  runId: string;
  sessionKey: string;
  status: RunStatus;
  /** The assistant's final text, or the message saying why the run stopped. */
  text: string;
  /** Why it stopped: end, max_steps, token_budget, usd_budget, max_tokens, refusal, all_models_failed, aborted... */
  reason: string;
  steps: number;
  usage: { inputTokens: number; outputTokens: number; cacheReadTokens: number; cacheWriteTokens: number };
  costUsd: number;
  model: string | null;
}
