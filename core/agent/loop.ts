// One agent run: assemble context, call the model (through the fallback chain),
// run the tools it asks for under policy, feed results back, repeat — until the
// model answers, a limit stops it (always with a message saying which), or it is
// aborted. Every step is persisted before the next begins; only the commit that
// accepts the user's message waits for an fsync (see store.ts on durability).
import type { AgentSettings } from '../config/config.ts';
import type { AuditLog } from '../audit.ts';
import type { Logger } from '../log/logger.ts';
import type { ChatMessage, CompletionRequest, ContentPart, ModelInfo, ToolDef, ToolResult, Usage } from '../plugin-api.ts';
import { budgetTokens, costUsd, dayStart, estimateTokens, messageTokens } from './accounting.ts';
import { chooseSplit, renderForSummary, splitSummary, SUMMARY_PREFIX, SUMMARY_SYSTEM } from './compaction.ts';

/** The memory plugin's tool that appends to today's note: where durable facts go before compaction. */
const MEMORY_FLUSH_TOOL = 'memory_write';
import { AllModelsFailedError, completeWithFallback, RunAbortedError } from './fallback.ts';
import { decideTool } from './policy.ts';
import { readSkill, SKILL_READ_TOOL, skillsPrompt, type SkillInfo } from './skills.ts';
import type { AgentStore, StoredMessage } from './store.ts';
import { refString, type Approver, type AgentStream, type ModelClient, type ModelRef, type RunResult, type RunStatus, type ToolRunner } from './types.ts';

export interface Limits {
  /** Tool arguments larger than this (JSON bytes) are refused. */
  maxToolArgBytes: number;
  /** Tool output is cut to this many characters before the model sees it. */
  maxToolResultChars: number;
  fallbackRounds: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
}

export const DEFAULT_LIMITS: Limits = { maxToolArgBytes: 64 * 1024, maxToolResultChars: 32_000, fallbackRounds: 2, backoffBaseMs: 1000, backoffMaxMs: 30_000 };

export interface LoopDeps {
  store: AgentStore;
  models: ModelClient;
  tools: ToolRunner;
  approver: Approver | null;
  audit: AuditLog;
  log: Logger;
  now(): number;
  sleep(ms: number, signal: AbortSignal): Promise<void>;
  random(): number;
  limits: Limits;
  workspaceSection(dir: string): string;
}

export interface RunSpec {
  runId: string;
  sessionKey: string;
  sessionId: string;
  agentId: string;
  agentName?: string;
  text: string;
  settings: AgentSettings;
  chain: ModelRef[];
  workspaceDir: string;
  skills: SkillInfo[];
  signal: AbortSignal;
  emit(stream: AgentStream, data: Record<string, unknown>): void;
}

class StopRun {
  readonly reason: string;
  readonly message: string;
  constructor(reason: string, message: string) {
    this.reason = reason;
    this.message = message;
  }
}

export async function runAgent(spec: RunSpec, deps: LoopDeps): Promise<RunResult> {
  const { store } = deps;
  const s = spec.settings;
  const maxSteps = s.maxSteps ?? 24;
  const tokensPerRun = s.budget?.tokensPerRun ?? Infinity;
  const usdPerDay = s.budget?.usdPerDay ?? Infinity;
  const atFraction = s.compaction?.atFraction ?? 0.8;
  const total = { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0 };
  let cost = 0;
  let budgetUsed = 0;
  let steps = 0;
  let lastModel: string | null = null;
  // The live transcript is read once per run and then kept in step with what this
  // run appends: the session queue makes this run the session's only writer.
  let live: StoredMessage[] = [];
  const append = (m: ChatMessage) => {
    const createdAt = deps.now();
    const id = store.append(spec.sessionKey, spec.sessionId, spec.runId, m, createdAt);
    live.push({ id, message: m, runId: spec.runId, createdAt });
  };

  spec.emit('lifecycle', { phase: 'start', agentId: spec.agentId, model: refString(spec.chain[0]) });

  const account = (ref: ModelRef, info: ModelInfo, usage: Usage) => {
    const c = costUsd(usage, info);
    total.inputTokens += usage.inputTokens;
    total.outputTokens += usage.outputTokens;
    total.cacheReadTokens += usage.cacheReadTokens ?? 0;
    total.cacheWriteTokens += usage.cacheWriteTokens ?? 0;
    budgetUsed += budgetTokens(usage);
    cost += c;
    lastModel = refString(ref);
    store.recordStep(spec.runId, lastModel, usage, c);
  };
  // Without a daily budget there is nothing to compare against: skip the sum over today's runs.
  const spentToday = () => (usdPerDay === Infinity ? 0 : store.spentSince(spec.agentId, dayStart(deps.now())));
  const usdStop = () =>
    new StopRun(
      'usd_budget',
      `Stopped: agent "${spec.agentId}" has spent $${spentToday().toFixed(4)} today, reaching its budget of $${usdPerDay} per day (budget.usdPerDay). The budget resets at 00:00 UTC.`,
    );

  // Tools: what the host offers, filtered by policy, plus skill_read; names made wire-safe.
  const toolDefs: ToolDef[] = [];
  const wireToName = new Map<string, string>();
  const nameToWire = new Map<string, string>();
  const approvalNeeded = new Set<string>();
  const offer = (def: ToolDef) => {
    const decision = decideTool(s.tools, def.name);
    if (!decision.allowed || nameToWire.has(def.name)) return;
    if (decision.approval) approvalNeeded.add(def.name);
    let wire = def.name.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 60) || 'tool';
    for (let n = 2; wireToName.has(wire); n++) wire = `${wire.slice(0, 56)}_${n}`;
    wireToName.set(wire, def.name);
    nameToWire.set(def.name, wire);
    toolDefs.push({ name: wire, description: def.description, input: def.input });
  };

  let status: RunStatus = 'done';
  let reason = 'end';
  let text = '';
  let error: string | null = null;
  try {
    live = store.transcript(spec.sessionId);
    let summary = store.getSession(spec.sessionKey)?.summary ?? null;
    store.atomically(() => {
      store.startRun(spec.runId, spec.sessionKey, spec.sessionId, spec.agentId, deps.now());
      append({ role: 'user', content: [{ type: 'text', text: spec.text }] });
    });
    if (spentToday() >= usdPerDay) throw usdStop();
    for (const def of await deps.tools.list(spec.agentId)) offer(def);
    if (spec.skills.some((sk) => sk.eligible)) offer(SKILL_READ_TOOL);
    const toolTokens = estimateTokens(JSON.stringify(toolDefs));
    const infos = await Promise.all(spec.chain.map((r) => deps.models.modelInfo(r)));
    const window = Math.min(...infos.map((i) => i.contextWindow));

    for (;;) {
      if (spec.signal.aborted) throw new RunAbortedError();
      const system = systemPrompt(spec, deps);
      const fixed = estimateTokens(system) + toolTokens + (summary ? estimateTokens(summary) : 0);
      const estimate = fixed + live.reduce((n, m) => n + messageTokens(m.message), 0);
      if (estimate > window * atFraction) {
        const split = chooseSplit(live, Math.max(0, Math.floor(window * atFraction * 0.5) - fixed));
        if (split > 0) {
          const { result, ref, info } = await completeWithFallback({
            ...fallbackBase(spec, deps),
            build: (r, i) => ({ model: r.model, system: SUMMARY_SYSTEM, messages: [{ role: 'user', content: [{ type: 'text', text: renderForSummary(summary, live.slice(0, split).map((m) => m.message)) }] }], maxTokens: Math.min(4096, i.maxTokens) }),
            onEvent: () => {},
          });
          const { summary: newSummary, facts } = splitSummary(textOf(result.message.content));
          const folded = newSummary || summary || '';
          // Facts leaving the context go to long-term memory first (best effort: a run never fails for it).
          if (facts.length && nameToWire.has(MEMORY_FLUSH_TOOL) && !approvalNeeded.has(MEMORY_FLUSH_TOOL)) {
            await deps.tools
              .run(MEMORY_FLUSH_TOOL, { target: 'daily', text: facts.map((f) => `- ${f}`).join('\n') }, { agentId: spec.agentId, sessionKey: spec.sessionKey, runId: spec.runId, signal: spec.signal })
              .then(
                () => spec.emit('lifecycle', { phase: 'memory_flush', facts: facts.length }),
                (err: unknown) => deps.log.warn('memory flush before compaction failed', { runId: spec.runId, error: (err as Error).message }),
              );
          }
          store.relaxed(() => {
            account(ref, info, result.usage);
            store.compact(spec.sessionId, live[split - 1].id, folded);
          });
          summary = folded;
          spec.emit('lifecycle', { phase: 'compaction', compactedMessages: split, keptMessages: live.length - split, estimatedTokens: estimate, contextWindow: window });
          live = live.slice(split);
        }
      }
      const messages = normalize([...(summary ? [{ role: 'user' as const, content: [{ type: 'text' as const, text: SUMMARY_PREFIX + summary }] }] : []), ...live.map((m) => m.message)], nameToWire);

      steps++;
      const { result, ref, info } = await completeWithFallback({
        ...fallbackBase(spec, deps),
        build: (r, i): CompletionRequest => ({ model: r.model, system, messages, ...(toolDefs.length ? { tools: toolDefs } : {}), maxTokens: i.maxTokens }),
        onEvent: (e) => {
          if (e.type === 'text') spec.emit('assistant', { delta: e.delta });
        },
      });

      const oversized = new Map<string, number>();
      const content: ContentPart[] = result.message.content.map((p) => {
        if (p.type !== 'tool_call') return p;
        const size = Buffer.byteLength(typeof p.input === 'string' ? p.input : JSON.stringify(p.input ?? {}));
        // Refused arguments are not kept: they would be re-sent on every later turn.
        if (size > deps.limits.maxToolArgBytes) oversized.set(p.id, size);
        return { ...p, name: wireToName.get(p.name) ?? p.name, ...(size > deps.limits.maxToolArgBytes ? { input: { omitted: `${size} bytes of arguments were refused` } } : {}) };
      });
      store.relaxed(() => {
        account(ref, info, result.usage);
        append({ role: 'assistant', content });
      });
      const calls = content.filter((p): p is Extract<ContentPart, { type: 'tool_call' }> => p.type === 'tool_call');
      if (calls.length === 0) {
        text = textOf(content);
        if (result.stopReason === 'max_tokens') reason = 'max_tokens';
        else if (result.stopReason === 'refusal') reason = 'refusal';
        if (!text && reason === 'max_tokens') text = 'The answer was cut off at the model\'s output limit.';
        break;
      }

      let stop: StopRun | null = null;
      if (budgetUsed > tokensPerRun) stop = new StopRun('token_budget', `Stopped: this run used ${budgetUsed} tokens, over its budget of ${tokensPerRun} tokens per run (budget.tokensPerRun).`);
      else if (spentToday() >= usdPerDay) stop = usdStop();
      const results = stop ? calls.map((c) => notRun(c.id, stop!.message)) : await runTools(calls, spec, deps, approvalNeeded, wireToName, oversized);
      store.relaxed(() => append({ role: 'user', content: results }));
      if (spec.signal.aborted) throw new RunAbortedError();
      if (stop) throw stop;
      if (steps >= maxSteps) throw new StopRun('max_steps', `Stopped: this run reached its limit of ${maxSteps} steps (maxSteps) before the task was finished. Send another message to let it continue.`);
    }
  } catch (err) {
    if (err instanceof StopRun) {
      status = 'stopped';
      reason = err.reason;
      text = err.message;
      store.relaxed(() => append({ role: 'assistant', content: [{ type: 'text', text: err.message }] }));
      spec.emit('assistant', { delta: err.message, notice: true });
    } else if (err instanceof RunAbortedError) {
      status = 'aborted';
      reason = 'aborted';
      text = 'The run was aborted.';
    } else if (err instanceof AllModelsFailedError) {
      status = 'error';
      reason = 'all_models_failed';
      text = err.message;
      error = err.message;
    } else {
      status = 'error';
      reason = 'internal';
      text = 'The run failed because of an internal error; it is in the gateway log.';
      error = (err as Error)?.message ?? String(err);
      deps.log.error('agent run failed', { runId: spec.runId, sessionKey: spec.sessionKey, err });
    }
  }
  store.endRun(spec.runId, spec.sessionKey, status, reason, error, deps.now());
  const run: RunResult = { runId: spec.runId, sessionKey: spec.sessionKey, status, text, reason, steps, usage: total, costUsd: cost, model: lastModel };
  spec.emit('lifecycle', { phase: 'end', status, reason, text, steps, usage: total, costUsd: cost, model: lastModel });
  return run;
}

function fallbackBase(spec: RunSpec, deps: LoopDeps) {
  return {
    chain: spec.chain,
    models: deps.models,
    signal: spec.signal,
    sleep: deps.sleep,
    random: deps.random,
    rounds: deps.limits.fallbackRounds,
    baseDelayMs: deps.limits.backoffBaseMs,
    maxDelayMs: deps.limits.backoffMaxMs,
    onFailure: (ref: ModelRef, e: { kind: string; message: string; status?: number }, next: ModelRef | null, delayMs: number) => {
      deps.log.warn('model call failed', { runId: spec.runId, model: refString(ref), kind: e.kind, status: e.status });
      spec.emit('lifecycle', { phase: 'fallback', model: refString(ref), error: { kind: e.kind, message: e.message }, next: next ? refString(next) : null, delayMs });
    },
  };
}

function systemPrompt(spec: RunSpec, deps: LoopDeps): string {
  const parts = [
    `You are ${spec.agentName ?? spec.agentId}, a personal AI assistant running in Carapace. Today is ${new Date(deps.now()).toISOString().slice(0, 10)} (UTC).`,
    deps.workspaceSection(spec.workspaceDir),
    skillsPrompt(spec.skills),
  ];
  return parts.filter(Boolean).join('\n\n');
}

/** Provider-ready history: consecutive same-role turns merged, a user turn first, tool names wire-safe. */
function normalize(messages: ChatMessage[], nameToWire: Map<string, string>): ChatMessage[] {
  const out: ChatMessage[] = [];
  for (const m of messages) {
    const content = m.content.map((p) => (p.type === 'tool_call' ? { ...p, name: nameToWire.get(p.name) ?? p.name.replace(/[^A-Za-z0-9_-]/g, '_') } : p));
    const prev = out[out.length - 1];
    if (prev && prev.role === m.role) prev.content = [...prev.content, ...content];
    else out.push({ role: m.role, content });
  }
  if (out[0]?.role === 'assistant') out.unshift({ role: 'user', content: [{ type: 'text', text: '(conversation continues)' }] });
  return out;
}

async function runTools(
  calls: Extract<ContentPart, { type: 'tool_call' }>[],
  spec: RunSpec,
  deps: LoopDeps,
  approvalNeeded: Set<string>,
  wireToName: Map<string, string>,
  oversized: Map<string, number>,
): Promise<ContentPart[]> {
  const offered = new Set(wireToName.values());
  const results: ContentPart[] = [];
  for (const call of calls) {
    if (spec.signal.aborted) {
      results.push(notRun(call.id, 'the run was aborted'));
      continue;
    }
    spec.emit('tool', { phase: 'start', toolCallId: call.id, name: call.name, input: call.input });
    const size = oversized.get(call.id);
    const r = size !== undefined
      ? { content: `The arguments for ${call.name} are ${size} bytes, over the limit of ${deps.limits.maxToolArgBytes} bytes. Send smaller input.`, isError: true }
      : await runOne(call, spec, deps, approvalNeeded.has(call.name), offered);
    const content = r.content.length > deps.limits.maxToolResultChars ? r.content.slice(0, deps.limits.maxToolResultChars) + `\n[... output truncated: ${r.content.length} characters, the first ${deps.limits.maxToolResultChars} are shown]` : r.content;
    spec.emit('tool', { phase: 'end', toolCallId: call.id, name: call.name, isError: r.isError === true, content: content.slice(0, 2000) });
    results.push({ type: 'tool_result', toolCallId: call.id, content, ...(r.isError ? { isError: true } : {}) });
  }
  return results;
}

async function runOne(call: Extract<ContentPart, { type: 'tool_call' }>, spec: RunSpec, deps: LoopDeps, needsApproval: boolean, offered: Set<string>): Promise<ToolResult> {
  const fail = (content: string): ToolResult => ({ content, isError: true });
  if (!offered.has(call.name)) return fail(`There is no tool named "${call.name.slice(0, 100)}". Available tools: ${[...offered].join(', ') || 'none'}.`);
  if (typeof call.input === 'string') return fail(`Your arguments for ${call.name} were not valid JSON (${call.input.slice(0, 200)}${call.input.length > 200 ? '…' : ''}). Call it again with a JSON object that matches its input schema.`);
  if (typeof call.input !== 'object' || call.input === null || Array.isArray(call.input)) return fail(`The arguments for ${call.name} must be a JSON object.`);
  const size = Buffer.byteLength(JSON.stringify(call.input));
  if (size > deps.limits.maxToolArgBytes) return fail(`The arguments for ${call.name} are ${size} bytes, over the limit of ${deps.limits.maxToolArgBytes} bytes. Send smaller input.`);
  if (call.name === SKILL_READ_TOOL.name) return readSkill(spec.skills, call.input);
  if (needsApproval) {
    const decision = deps.approver
      ? await deps.approver.request({ agentId: spec.agentId, sessionKey: spec.sessionKey, runId: spec.runId, tool: call.name, input: call.input }, spec.signal).catch((err) => ({ approved: false, reason: (err as Error).message }))
      : { approved: false, reason: 'no approver is available' };
    deps.audit.append({ actor: `agent:${spec.agentId}`, action: decision.approved ? 'tool.approved' : 'tool.denied', target: call.name, sessionKey: spec.sessionKey, data: { runId: spec.runId, reason: decision.reason ?? null } });
    if (!decision.approved) return fail(`The owner did not approve ${call.name}${decision.reason ? `: ${decision.reason}` : ''}. Do not retry it without asking.`);
  }
  try {
    const out = await deps.tools.run(call.name, call.input, { agentId: spec.agentId, sessionKey: spec.sessionKey, runId: spec.runId, signal: spec.signal });
    return typeof out === 'string' ? { content: out } : { content: String(out?.content ?? ''), ...(out?.isError ? { isError: true } : {}) };
  } catch (err) {
    return fail(`${call.name} failed: ${(err as Error)?.message ?? String(err)}`);
  }
}

const notRun = (id: string, why: string): ContentPart => ({ type: 'tool_result', toolCallId: id, content: `Not run: ${why}`, isError: true });

const textOf = (content: ContentPart[]) =>
  content
    .filter((p): p is Extract<ContentPart, { type: 'text' }> => p.type === 'text')
    .map((p) => p.text)
    .join('');
