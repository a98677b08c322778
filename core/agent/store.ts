// Sessions, transcripts and runs of the agent. This module is the only writer of
// agent_sessions, agent_messages and agent_runs (migration 0300-agent-sessions).
//
// Durability: the connection runs WAL with synchronous=FULL, and the commit that
// accepts the user's message (`accept`) keeps it: it returns only after the WAL is
// fsynced. Everything else this module writes in a turn (session rows, the
// assistant's replies, tool results, step usage, run ends) is regenerable or
// bookkeeping, so it is committed with synchronous=NORMAL (`relaxed`): no fsync
// of its own. On power loss such a commit may roll back — never half-applied,
// the database stays consistent — unless a later FULL commit on the same database
// (the next accepted message, the delivery queue, the audit log) fsynced the WAL
// after it: the WAL is one append-only file, so that fsync carries every earlier
// frame with it. A run whose end was lost is closed as interrupted at the next
// start (closeInterruptedRuns).
import { randomUUID } from 'node:crypto';
import type { Db } from '../store/db.ts';
import type { ChatMessage, Usage } from '../plugin-api.ts';

export interface SessionRow {
  sessionKey: string;
  agentId: string;
  sessionId: string;
  createdAt: number;
  updatedAt: number;
  summary: string | null;
}

export interface AcceptedInput {
  runId: string;
  sessionKey: string;
  agentId: string;
  text: string;
  /** Opaque to the agent: where the caller wants the reply (a channel chat...). */
  origin?: Record<string, unknown>;
  acceptedAt: number;
}

export interface StoredMessage {
  id: number;
  message: ChatMessage;
  runId: string | null;
  createdAt: number;
}

export interface RunRow {
  runId: string;
  sessionKey: string;
  agentId: string;
  status: string;
  stopReason: string | null;
  model: string | null;
  steps: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
  startedAt: number;
  endedAt: number | null;
  error: string | null;
}

export type AgentStore = ReturnType<typeof createAgentStore>;

export function createAgentStore(db: Db) {
  const q = {
    getSession: db.prepare('SELECT * FROM agent_sessions WHERE session_key = ?'),
    insertSession: db.prepare('INSERT INTO agent_sessions (session_key, agent_id, session_id, created_at, updated_at, summary) VALUES (?,?,?,?,?,NULL)'),
    renewSession: db.prepare('UPDATE agent_sessions SET session_id = ?, created_at = ?, updated_at = ?, summary = NULL WHERE session_key = ?'),
    touch: db.prepare('UPDATE agent_sessions SET updated_at = ? WHERE session_key = ?'),
    setSummary: db.prepare('UPDATE agent_sessions SET summary = ? WHERE session_id = ?'),
    listSessions: db.prepare('SELECT * FROM agent_sessions ORDER BY updated_at DESC LIMIT ?'),
    countSessions: db.prepare('SELECT COUNT(*) AS n FROM agent_sessions').pluck(),
    append: db.prepare('INSERT INTO agent_messages (session_id, session_key, run_id, role, content, compacted, created_at) VALUES (?,?,?,?,?,0,?)'),
    transcript: db.prepare('SELECT id, role, content, run_id, created_at FROM agent_messages WHERE session_id = ? AND compacted = 0 ORDER BY id'),
    compact: db.prepare('UPDATE agent_messages SET compacted = 1 WHERE session_id = ? AND id <= ?'),
    history: db.prepare('SELECT id, role, content, run_id, created_at FROM agent_messages WHERE session_key = ? AND id < ? ORDER BY id DESC LIMIT ?'),
    accept: db.prepare('INSERT INTO agent_inbox (run_id, session_key, agent_id, text, origin, accepted_at) VALUES (?,?,?,?,?,?)'),
    take: db.prepare('DELETE FROM agent_inbox WHERE run_id = ?'),
    inbox: db.prepare('SELECT * FROM agent_inbox ORDER BY accepted_at, rowid'),
    startRun: db.prepare("INSERT INTO agent_runs (run_id, session_key, session_id, agent_id, started_at, status) VALUES (?,?,?,?,?,'running')"),
    step: db.prepare(
      'UPDATE agent_runs SET steps = steps + 1, model = ?, input_tokens = input_tokens + ?, output_tokens = output_tokens + ?, cache_read_tokens = cache_read_tokens + ?, cache_write_tokens = cache_write_tokens + ?, cost_usd = cost_usd + ? WHERE run_id = ?',
    ),
    endRun: db.prepare('UPDATE agent_runs SET status = ?, stop_reason = ?, error = ?, ended_at = ? WHERE run_id = ?'),
    getRun: db.prepare('SELECT * FROM agent_runs WHERE run_id = ?'),
    spent: db.prepare('SELECT COALESCE(SUM(cost_usd), 0) AS usd FROM agent_runs WHERE agent_id = ? AND started_at >= ?'),
    interrupted: db.prepare("UPDATE agent_runs SET status = 'error', stop_reason = 'interrupted', error = 'the gateway stopped during this run', ended_at = ? WHERE status = 'running'"),
  };

  const toSession = (r: Record<string, unknown>): SessionRow => ({
    sessionKey: r.session_key as string,
    agentId: r.agent_id as string,
    sessionId: r.session_id as string,
    createdAt: r.created_at as number,
    updatedAt: r.updated_at as number,
    summary: (r.summary as string | null) ?? null,
  });
  const toMessage = (r: Record<string, unknown>): StoredMessage => ({
    id: r.id as number,
    message: { role: r.role as 'user' | 'assistant', content: JSON.parse(r.content as string) },
    runId: (r.run_id as string | null) ?? null,
    createdAt: r.created_at as number,
  });

  // synchronous is a per-connection setting that SQLite refuses to change inside a
  // transaction; better-sqlite3 is synchronous, so nothing else can commit on this
  // connection between the switch and the restore.
  const fullLevel = db.pragma('synchronous', { simple: true }) as number;
  function relaxed<T>(fn: () => T): T {
    if (db.inTransaction || fullLevel <= 1 || db.memory) return db.transaction(fn)();
    db.pragma('synchronous = NORMAL');
    try {
      return db.transaction(fn)();
    } finally {
      db.pragma(`synchronous = ${fullLevel}`);
    }
  }

  return {
    /** Run several writes as one durable transaction (one fsync). */
    atomically<T>(fn: () => T): T {
      return db.transaction(fn)();
    },
    /** Run several writes as one transaction without an fsync of its own (see the top of this file). */
    relaxed,
    /**
     * The session for a key, created on first use. When it has been idle longer than
     * `idleResetMs` it starts over with a fresh transcript (the old one stays in history).
     */
    openSession(sessionKey: string, agentId: string, now: number, idleResetMs: number | null): SessionRow & { renewed: boolean } {
      // A new or renewed session row is made durable by the accepted message that follows it.
      const row = q.getSession.get(sessionKey) as Record<string, unknown> | undefined;
      if (!row) {
        const sessionId = randomUUID();
        relaxed(() => q.insertSession.run(sessionKey, agentId, sessionId, now, now));
        return { sessionKey, agentId, sessionId, createdAt: now, updatedAt: now, summary: null, renewed: false };
      }
      const s = toSession(row);
      if (idleResetMs !== null && now - s.updatedAt > idleResetMs) {
        const sessionId = randomUUID();
        relaxed(() => q.renewSession.run(sessionId, now, now, sessionKey));
        return { ...s, sessionId, createdAt: now, updatedAt: now, summary: null, renewed: true };
      }
      return { ...s, renewed: false };
    },
    getSession(sessionKey: string): SessionRow | null {
      const row = q.getSession.get(sessionKey) as Record<string, unknown> | undefined;
      return row ? toSession(row) : null;
    },
    /** Start a fresh transcript for the key (sessions.reset). */
    resetSession(sessionKey: string, now: number): boolean {
      return q.renewSession.run(randomUUID(), now, now, sessionKey).changes > 0;
    },
    touch(sessionKey: string, now: number): void {
      q.touch.run(now, sessionKey);
    },
    listSessions(limit = 200): SessionRow[] {
      return (q.listSessions.all(limit) as Record<string, unknown>[]).map(toSession);
    },
    countSessions(): number {
      return q.countSessions.get() as number;
    },
    append(sessionKey: string, sessionId: string, runId: string | null, message: ChatMessage, now: number): number {
      return Number(q.append.run(sessionId, sessionKey, runId, message.role, JSON.stringify(message.content), now).lastInsertRowid);
    },
    /** The live (not compacted) transcript of a session, oldest first. */
    transcript(sessionId: string): StoredMessage[] {
      return (q.transcript.all(sessionId) as Record<string, unknown>[]).map(toMessage);
    },
    /** Fold every message up to `uptoId` into `summary`, atomically (regenerable: relaxed). */
    compact(sessionId: string, uptoId: number, summary: string): void {
      relaxed(() => {
        q.compact.run(sessionId, uptoId);
        q.setSummary.run(summary, sessionId);
      });
    },
    /** Every message of a key across resets, newest page first then returned oldest first. */
    history(sessionKey: string, limit = 100, before = Number.MAX_SAFE_INTEGER): StoredMessage[] {
      return (q.history.all(sessionKey, before, limit) as Record<string, unknown>[]).map(toMessage).reverse();
    },
    /** Durably record an accepted message before its turn starts (FULL: it returns after the fsync). */
    accept(input: AcceptedInput): void {
      q.accept.run(input.runId, input.sessionKey, input.agentId, input.text, input.origin ? JSON.stringify(input.origin) : null, input.acceptedAt);
    },
    /** Accepted messages whose turn never started, oldest first. */
    pendingInputs(): AcceptedInput[] {
      return (q.inbox.all() as Record<string, unknown>[]).map((r) => ({
        runId: r.run_id as string,
        sessionKey: r.session_key as string,
        agentId: r.agent_id as string,
        text: r.text as string,
        origin: r.origin ? (JSON.parse(r.origin as string) as Record<string, unknown>) : undefined,
        acceptedAt: r.accepted_at as number,
      }));
    },
    /** Forget an accepted message that will not run (aborted before its turn, or unrunnable). */
    dropInput(runId: string): void {
      q.take.run(runId);
    },
    /** Called inside the transaction that appends the user's message: the input leaves the inbox as it enters the transcript. */
    startRun(runId: string, sessionKey: string, sessionId: string, agentId: string, now: number): void {
      q.take.run(runId);
      q.startRun.run(runId, sessionKey, sessionId, agentId, now);
    },
    recordStep(runId: string, model: string, usage: Usage, costUsd: number): void {
      q.step.run(model, usage.inputTokens, usage.outputTokens, usage.cacheReadTokens ?? 0, usage.cacheWriteTokens ?? 0, costUsd, runId);
    },
    /** Close a run and mark its session active, in one transaction (relaxed: see the top of this file). */
    endRun(runId: string, sessionKey: string, status: string, stopReason: string, error: string | null, now: number): void {
      relaxed(() => {
        q.endRun.run(status, stopReason, error, now, runId);
        q.touch.run(now, sessionKey);
      });
    },
    getRun(runId: string): RunRow | null {
      const r = q.getRun.get(runId) as Record<string, unknown> | undefined;
      if (!r) return null;
      return {
        runId: r.run_id as string,
        sessionKey: r.session_key as string,
        agentId: r.agent_id as string,
        status: r.status as string,
        stopReason: (r.stop_reason as string | null) ?? null,
        model: (r.model as string | null) ?? null,
        steps: r.steps as number,
        inputTokens: r.input_tokens as number,
        outputTokens: r.output_tokens as number,
        costUsd: r.cost_usd as number,
        startedAt: r.started_at as number,
        endedAt: (r.ended_at as number | null) ?? null,
        error: (r.error as string | null) ?? null,
      };
    },
    /** USD spent by an agent's runs started since `since` (ms). */
    spentSince(agentId: string, since: number): number {
      return (q.spent.get(agentId, since) as { usd: number }).usd;
    },
    /** Runs a previous process left open are closed as interrupted. */
    closeInterruptedRuns(now: number): number {
      return q.interrupted.run(now).changes;
    },
  };
}
