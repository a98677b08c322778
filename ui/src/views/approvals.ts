// Pending tool calls the policy parks for the owner (`requireApproval`): tool,
// session and the exact arguments, approve or deny.
import { h, clear, json, ago } from '../dom.ts';
import type { App, View } from '../app.ts';

export interface Approval {
  id: string;
  tool: string;
  input: unknown;
  agentId: string;
  sessionKey: string;
  runId?: string | null;
  status?: string;
  requestedAt?: number;
  expiresAt?: number;
}

export function approvalCard(app: App, a: Approval, onDone: () => void): HTMLElement {
  const status = h('span', { class: 'muted' }, a.expiresAt ? `expires ${ago(a.expiresAt)}` : '');
  const decide = (decision: 'approved' | 'denied') => async () => {
    try {
      await app.call('approvals.resolve', { id: a.id, decision, idempotencyKey: app.key() });
      app.toast(`${a.tool}: ${decision}`, 'ok');
      onDone();
    } catch {
      // shown by call
    }
  };
  return h(
    'div',
    { class: 'card approval', 'data-approval': a.id },
    h('div', { class: 'card-head' }, h('strong', null, `Run ${a.tool}?`), status),
    h('div', { class: 'muted small' }, `agent ${a.agentId} · ${a.sessionKey}`),
    h('pre', { class: 'args' }, json(a.input)),
    h('div', { class: 'actions' }, h('button', { type: 'button', class: 'primary', 'data-action': 'approve', onclick: decide('approved') }, 'Approve'), h('button', { type: 'button', class: 'danger', 'data-action': 'deny', onclick: decide('denied') }, 'Deny')),
  );
}

export const approvalsView: View = {
  id: 'approvals',
  title: 'Approvals',
  scope: 'operator.write',
  async render(root, app) {
    const list = h('div', { class: 'cards', id: 'approvals' });
    root.append(h('h2', null, 'Pending tool approvals'), list);
    async function load(): Promise<void> {
      const res = await app.tryCall<{ approvals: Approval[] }>('approvals.list', { status: 'pending' });
      clear(list);
      if (res === null) return void list.appendChild(h('p', { class: 'muted' }, 'This gateway does not offer approvals yet.'));
      if (res.approvals.length === 0) list.appendChild(h('p', { class: 'muted empty' }, 'Nothing waits for you.'));
      for (const a of res.approvals) list.appendChild(approvalCard(app, a, () => void load()));
    }
    app.on('approval.requested', () => void load());
    await load();
  },
};
