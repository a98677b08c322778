import { randomBytes } from 'node:crypto';
import type { Db } from '../store/db.ts';
import type { AuditLog } from '../audit.ts';
import type { EventFanout } from '../bus/types.ts';
import type { Timers } from '../timers.ts';
import type { Logger } from '../log/logger.ts';
import { CarapaceError } from '../errors.ts';

// Pending tool approvals. This module is the only writer of the `approvals`
// table. A request parks the tool call until the owner decides or the timeout
// passes (a timeout denies). Restart policy: a request still pending when the
// gateway starts is marked `denied` by `kernel:restart` — the agent turn that was
// waiting for it is gone, so approving it later would run nothing and mislead.

export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'timeout';
export type Decision = 'approved' | 'denied' | 'timeout';

export interface ApprovalCall {
  tool: string;
  input: unknown;
  agentId: string;
  sessionKey: string;
  runId?: string;
}

export interface ApprovalRecord {
  id: string;
  tool: string;
  input: unknown;
  agentId: string;
  sessionKey: string;
  runId: string | null;
  status: ApprovalStatus;
  requestedAt: number;
  expiresAt: number;
  decidedAt: number | null;
  decidedBy: string | null;
}

export interface Approvals {
  request(call: ApprovalCall, opts?: { timeoutMs?: number }): Promise<Decision>;
  /** Throws NOT_FOUND for an unknown id, CONFLICT when it was already decided. */
  resolve(id: string, decision: 'approved' | 'denied', by: string): ApprovalRecord;
  list(filter?: { status?: ApprovalStatus; limit?: number }): ApprovalRecord[];
  get(id: string): ApprovalRecord | undefined;
  /** Cancel timers and deny whatever is still waiting in this process. */
  close(): void;
}

export interface ApprovalsDeps {
  db: Db;
  audit: AuditLog;
  timers: Timers;
  events?: EventFanout;
  log?: Logger;
  defaultTimeoutMs?: number;
  /** Told of every new request (after it is stored): where the owner is asked besides the operator devices. */
  onRequested?: (ask: { id: string; tool: string; input: unknown; agentId: string; sessionKey: string; expiresAt: number }) => void;
}

/** Longest an input is kept in the table and shown to the owner. */
const MAX_INPUT_CHARS = 8192;
const SCOPE = 'operator.write';

function rowToRecord(r: Record<string, unknown>): ApprovalRecord {
  return {
    id: r.id as string,
    tool: r.tool as string,
    input: JSON.parse(r.input as string),
    agentId: r.agent_id as string,
    sessionKey: r.session_key as string,
    runId: (r.run_id as string | null) ?? null,
    status: r.status as ApprovalStatus,
    requestedAt: r.requested_at as number,
    expiresAt: r.expires_at as number,
    decidedAt: (r.decided_at as number | null) ?? null,
    decidedBy: (r.decided_by as string | null) ?? null,
  };
}

function storedInput(input: unknown): string {
  const s = JSON.stringify(input ?? null);
  return s.length <= MAX_INPUT_CHARS ? s : JSON.stringify({ truncated: true, preview: s.slice(0, MAX_INPUT_CHARS) });
}

export function createApprovals(deps: ApprovalsDeps): Approvals {
  const { db, audit, timers } = deps;
  const defaultTimeoutMs = deps.defaultTimeoutMs ?? 5 * 60_000;
  const waiters = new Map<string, { settle: (d: Decision) => void; cancel: () => void }>();

  const insert = db.prepare(
    `INSERT INTO approvals (id, tool, input, agent_id, session_key, run_id, status, requested_at, expires_at)
     VALUES (?,?,?,?,?,?,'pending',?,?)`,
  );
  const decide = db.prepare(
    `UPDATE approvals SET status = ?, decided_at = ?, decided_by = ? WHERE id = ? AND status = 'pending'`,
  );
  const byId = db.prepare('SELECT * FROM approvals WHERE id = ?');

  // Restart recovery (see the header).
  const stale = db.prepare(`SELECT id, tool, session_key FROM approvals WHERE status = 'pending'`).all() as {
    id: string;
    tool: string;
    session_key: string;
  }[];
  for (const s of stale) {
    decide.run('denied', timers.now(), 'kernel:restart', s.id);
    audit.append({ actor: 'kernel:approvals', action: 'approval.denied', target: s.id, sessionKey: s.session_key, data: { tool: s.tool, reason: 'gateway restarted while pending' } });
  }

  function finish(id: string, status: Decision, by: string): boolean {
    const changed = decide.run(status, timers.now(), by, id).changes === 1;
    if (!changed) return false;
    const rec = rowToRecord(byId.get(id) as Record<string, unknown>);
    audit.append({ actor: by, action: `approval.${status}`, target: id, sessionKey: rec.sessionKey, data: { tool: rec.tool } });
    const w = waiters.get(id);
    if (w) {
      waiters.delete(id);
      w.cancel();
      w.settle(status);
    }
    return true;
  }

  return {
    request(call, opts = {}) {
      const id = `apr_${randomBytes(6).toString('hex')}`;
      const now = timers.now();
      const timeoutMs = opts.timeoutMs ?? defaultTimeoutMs;
      const expiresAt = now + timeoutMs;
      insert.run(id, call.tool, storedInput(call.input), call.agentId, call.sessionKey, call.runId ?? null, now, expiresAt);
      audit.append({
        actor: `agent:${call.agentId}`,
        action: 'approval.requested',
        target: id,
        sessionKey: call.sessionKey,
        data: { tool: call.tool, input: call.input as Record<string, unknown>, runId: call.runId ?? null },
      });
      const decided = new Promise<Decision>((resolve) => {
        const cancel = timers.setTimeout(() => finish(id, 'timeout', 'kernel:timeout'), timeoutMs);
        waiters.set(id, { settle: resolve, cancel });
      });
      deps.events?.broadcast(
        'approval.requested',
        { id, tool: call.tool, input: JSON.parse(storedInput(call.input)), agentId: call.agentId, sessionKey: call.sessionKey, runId: call.runId ?? null, expiresAt },
        SCOPE,
      );
      deps.log?.info('approval requested', { approvalId: id, tool: call.tool, sessionKey: call.sessionKey });
      try {
        deps.onRequested?.({ id, tool: call.tool, input: JSON.parse(storedInput(call.input)), agentId: call.agentId, sessionKey: call.sessionKey, expiresAt });
      } catch (err) {
        deps.log?.warn('could not ask for approval in chat', { approvalId: id, err });
      }
      return decided;
    },

    resolve(id, decision, by) {
      if (decision !== 'approved' && decision !== 'denied') {
        throw new CarapaceError('INVALID_REQUEST', `decision must be "approved" or "denied"`, { pointer: '/params/decision' });
      }
      const row = byId.get(id) as Record<string, unknown> | undefined;
      if (!row) throw new CarapaceError('NOT_FOUND', `no approval request ${id}`);
      if (row.status !== 'pending') {
        throw new CarapaceError('CONFLICT', `approval ${id} was already decided (${row.status as string})`, { status: row.status });
      }
      if (!finish(id, decision, by)) throw new CarapaceError('CONFLICT', `approval ${id} was decided meanwhile`);
      return rowToRecord(byId.get(id) as Record<string, unknown>);
    },

    list(filter = {}) {
      const rows = filter.status
        ? db.prepare('SELECT * FROM approvals WHERE status = ? ORDER BY requested_at DESC LIMIT ?').all(filter.status, filter.limit ?? 100)
        : db.prepare('SELECT * FROM approvals ORDER BY requested_at DESC LIMIT ?').all(filter.limit ?? 100);
      return (rows as Record<string, unknown>[]).map(rowToRecord);
    },

    get(id) {
      const r = byId.get(id) as Record<string, unknown> | undefined;
      return r ? rowToRecord(r) : undefined;
    },

    close() {
      for (const id of [...waiters.keys()]) finish(id, 'denied', 'kernel:shutdown');
    },
  };
}
