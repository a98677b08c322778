// WebChat: this browser's conversation with an agent over the paired bus.
// `chat.send` starts a run whose `agent` events stream back to this socket:
// assistant text deltas, tool calls (collapsible), lifecycle (queued, end).
import { h, clear, json, append } from '../dom.ts';
import type { App, View } from '../app.ts';
import { approvalCard, type Approval } from './approvals.ts';

interface AgentEvent {
  runId: string;
  sessionKey: string;
  seq: number;
  stream: 'lifecycle' | 'assistant' | 'tool';
  data: Record<string, unknown>;
}

type Part = { type: 'text'; text: string } | { type: 'tool_call'; id: string; name: string; input: unknown } | { type: 'tool_result'; toolCallId: string; content: string; isError?: boolean };

interface HistoryItem {
  id?: number;
  role?: string;
  content?: Part[] | string;
  message?: { role: string; content: Part[] | string };
  runId?: string | null;
  createdAt?: number;
}

/** The WebChat session of this browser (per-channel-peer, as the router names DMs). */
export function webchatSessionKey(deviceId: string): string {
  return `agent:main:webchat:dm:${deviceId}`;
}

let chosenSession: string | null = null;

function toolBlock(name: string, input: unknown, id: string): HTMLDetailsElement {
  return h(
    'details',
    { class: 'tool', 'data-tool-call': id },
    h('summary', null, h('span', { class: 'tool-name' }, name), h('span', { class: 'tool-state' }, 'running…')),
    h('div', { class: 'tool-label' }, 'input'),
    h('pre', { class: 'tool-input' }, json(input)),
  );
}

function finishTool(block: HTMLElement, content: string, isError: boolean): void {
  const state = block.querySelector('.tool-state');
  if (state) state.textContent = isError ? 'error' : 'done';
  block.classList.toggle('tool-error', isError);
  append(block, [h('div', { class: 'tool-label' }, 'result'), h('pre', { class: 'tool-output' }, content)]);
}

export const chatView: View = {
  id: 'chat',
  title: 'Chat',
  scope: 'operator.write',
  async render(root, app) {
    const own = webchatSessionKey(app.deviceId);
    let sessionKey = chosenSession ?? own;
    const picker = h('select', { id: 'session-picker', 'aria-label': 'session' }, h('option', { value: own }, 'This browser (WebChat)'));
    const log = h('div', { class: 'messages', id: 'messages', 'aria-live': 'polite' });
    const input = h('textarea', { id: 'chat-input', rows: 2, placeholder: 'Message the agent…', 'aria-label': 'message' });
    const send = h('button', { type: 'submit', class: 'primary', id: 'send' }, 'Send');
    const abort = h('button', { type: 'button', class: 'danger', id: 'abort', hidden: true }, 'Stop');
    const form = h('form', { class: 'composer' }, input, h('div', { class: 'composer-buttons' }, abort, send));
    append(root, [h('div', { class: 'toolbar' }, h('h2', null, 'Chat'), picker), log, form]);

    const runs = new Map<string, { el: HTMLElement; text: HTMLElement | null; tools: Map<string, HTMLElement> }>();
    let active: string | null = null;

    const scroll = () => (log.scrollTop = log.scrollHeight);
    const setActive = (runId: string | null) => {
      active = runId;
      abort.hidden = runId === null;
    };

    function bubble(role: string, ...children: (Node | string)[]): HTMLElement {
      const el = h('div', { class: `msg ${role}` }, ...children);
      log.appendChild(el);
      scroll();
      return el;
    }

    function runBubble(runId: string) {
      let r = runs.get(runId);
      if (!r) {
        const el = bubble('assistant');
        el.dataset.runId = runId;
        r = { el, text: null, tools: new Map() };
        runs.set(runId, r);
      }
      return r;
    }

    function renderHistory(items: HistoryItem[]): void {
      clear(log);
      runs.clear();
      const toolEls = new Map<string, HTMLElement>();
      for (const it of items) {
        const m = it.message ?? { role: it.role ?? 'assistant', content: it.content ?? [] };
        const parts: Part[] = typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : m.content;
        const results = parts.filter((p) => p.type === 'tool_result');
        for (const p of results) {
          const block = toolEls.get(p.toolCallId);
          if (block) finishTool(block, p.content, p.isError === true);
        }
        const visible = parts.filter((p) => p.type !== 'tool_result' || !toolEls.has(p.toolCallId));
        if (visible.length === 0) continue;
        const el = bubble(m.role === 'user' ? 'user' : 'assistant');
        for (const p of visible) {
          if (p.type === 'text') el.appendChild(h('div', { class: 'text' }, p.text));
          else if (p.type === 'tool_call') {
            const block = toolBlock(p.name, p.input, p.id);
            toolEls.set(p.id, block);
            el.appendChild(block);
          } else el.appendChild(h('pre', { class: 'tool-output' }, p.content));
        }
      }
      if (items.length === 0) log.appendChild(h('p', { class: 'muted empty' }, 'No messages yet. Say hello.'));
      scroll();
    }

    async function loadHistory(): Promise<void> {
      if (!app.has('operator.read')) return;
      const res = await app.tryCall<{ messages: HistoryItem[] }>('chat.history', { sessionKey, limit: 200 }).catch(() => null);
      if (res === null) {
        clear(log);
        log.appendChild(h('p', { class: 'muted' }, 'No history yet.'));
        return;
      }
      renderHistory(res.messages ?? []);
    }

    // A run's events come twice when this socket started it (to the caller, and on
    // the bus topic every reader sees); the topic alone carries runs started
    // elsewhere, or before a reconnect. (runId, seq) is unique.
    const seen = new Set<string>();
    function onAgent(payload: unknown): void {
      const ev = payload as AgentEvent;
      if (!ev || ev.sessionKey !== sessionKey) return;
      const id = `${ev.runId}:${ev.seq}`;
      if (seen.has(id)) return;
      seen.add(id);
      log.querySelector('.empty')?.remove();
      const r = runBubble(ev.runId);
      const d = ev.data ?? {};
      if (ev.stream === 'assistant' && typeof d.delta === 'string') {
        if (!r.text) {
          r.text = h('div', { class: d.notice ? 'text notice' : 'text' });
          r.el.appendChild(r.text);
        }
        r.text.textContent += d.delta;
      } else if (ev.stream === 'tool') {
        const id = String(d.toolCallId ?? '');
        if (d.phase === 'start') {
          const block = toolBlock(String(d.name ?? 'tool'), d.input, id);
          r.tools.set(id, block);
          r.el.appendChild(block);
          r.text = null; // text after a tool call is a new paragraph
        } else if (d.phase === 'end') {
          const block = r.tools.get(id);
          if (block) finishTool(block, String(d.content ?? ''), d.isError === true);
        }
      } else if (ev.stream === 'lifecycle') {
        if (d.phase === 'start' || d.phase === 'queued') {
          setActive(ev.runId);
          r.el.classList.add('running');
        } else if (d.phase === 'end') {
          r.el.classList.remove('running');
          r.el.dataset.status = String(d.status ?? 'done');
          if (d.status === 'aborted') r.el.appendChild(h('div', { class: 'run-note' }, 'stopped'));
          else if (d.status === 'error' || d.status === 'stopped') r.el.appendChild(h('div', { class: 'run-note error' }, String(d.text || d.reason || 'the run failed')));
          if (active === ev.runId) setActive(null);
        }
      }
      scroll();
    }

    function onApproval(payload: unknown): void {
      const a = payload as Approval;
      if (!a || a.sessionKey !== sessionKey) return;
      const el = bubble('system');
      el.appendChild(approvalCard(app, a, () => el.remove()));
    }

    app.on('agent', onAgent);
    if (app.has('operator.read')) await app.subscribe(['agent.event'], onAgent).catch(() => {});
    app.on('approval.requested', onApproval);

    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const text = input.value.trim();
      if (!text) return;
      input.value = '';
      log.querySelector('.empty')?.remove();
      bubble('user', h('div', { class: 'text' }, text));
      send.disabled = true;
      try {
        const res = await app.call<{ runId: string; sessionKey: string }>('chat.send', { sessionKey, text, idempotencyKey: app.key() });
        if (!runs.get(res.runId)?.el.dataset.status) setActive(res.runId);
        runBubble(res.runId);
      } catch {
        input.value = text;
      } finally {
        send.disabled = false;
        input.focus();
      }
    });
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
    abort.addEventListener('click', async () => {
      if (!active) return;
      const runId = active;
      await app.call('chat.abort', { runId }).catch(() => {});
    });
    picker.addEventListener('change', () => {
      sessionKey = picker.value;
      chosenSession = sessionKey === own ? null : sessionKey;
      setActive(null);
      void loadHistory();
    });

    await loadHistory();
    if (app.has('operator.read')) {
      const list = await app.tryCall<{ sessions: { sessionKey: string; agentId?: string; updatedAt?: number }[] }>('sessions.list', {}).catch(() => null);
      for (const s of list?.sessions ?? []) {
        if (s.sessionKey === own) continue;
        picker.appendChild(h('option', { value: s.sessionKey }, s.sessionKey));
      }
      if (chosenSession && [...picker.options].some((o) => o.value === chosenSession)) picker.value = chosenSession;
    }
    input.focus();
  },
};
