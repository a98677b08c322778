// Sessions: every conversation the agents keep, its transcript, and reset.
import { h, clear, ago, json, confirmButton } from '../dom.ts';
import type { View } from '../app.ts';

interface Session {
  sessionKey: string;
  agentId?: string;
  updatedAt?: number;
  createdAt?: number;
  summary?: string | null;
}

interface Item {
  message?: { role: string; content: unknown };
  role?: string;
  content?: unknown;
  createdAt?: number;
}

function partsText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return json(content);
  return content
    .map((p: Record<string, unknown>) => (p.type === 'text' ? String(p.text) : p.type === 'tool_call' ? `[tool ${String(p.name)}] ${json(p.input)}` : p.type === 'tool_result' ? `[result] ${String(p.content).slice(0, 500)}` : json(p)))
    .join('\n');
}

export const sessionsView: View = {
  id: 'sessions',
  title: 'Sessions',
  scope: 'operator.read',
  async render(root, app) {
    const list = h('div', { class: 'cards', id: 'sessions' });
    const transcript = h('div', { class: 'transcript', id: 'transcript' });
    root.append(h('h2', null, 'Sessions'), list, transcript);

    async function show(s: Session): Promise<void> {
      clear(transcript);
      transcript.appendChild(h('h3', null, s.sessionKey));
      const res = await app.call<{ messages: Item[] }>('chat.history', { sessionKey: s.sessionKey, limit: 200 });
      if (res.messages.length === 0) transcript.appendChild(h('p', { class: 'muted' }, 'Empty.'));
      for (const m of res.messages) {
        const msg = m.message ?? { role: m.role ?? '?', content: m.content };
        transcript.appendChild(h('div', { class: `msg ${msg.role === 'user' ? 'user' : 'assistant'}` }, h('div', { class: 'text' }, partsText(msg.content))));
      }
    }

    async function load(): Promise<void> {
      const res = await app.tryCall<{ sessions: Session[] }>('sessions.list', {});
      clear(list);
      if (res === null) return void list.appendChild(h('p', { class: 'muted' }, 'This gateway does not list sessions yet.'));
      if (res.sessions.length === 0) list.appendChild(h('p', { class: 'muted empty' }, 'No sessions yet.'));
      for (const s of res.sessions) {
        list.appendChild(
          h('div', { class: 'card', 'data-session': s.sessionKey },
            h('div', { class: 'card-head' }, h('strong', { class: 'mono small' }, s.sessionKey), h('span', { class: 'muted small' }, ago(s.updatedAt))),
            s.summary ? h('div', { class: 'muted small' }, s.summary.slice(0, 200)) : null,
            h('div', { class: 'actions' },
              h('button', { type: 'button', 'data-action': 'open', onclick: () => void show(s).catch(() => {}) }, 'Transcript'),
              app.has('operator.write')
                ? confirmButton('Reset', 'Confirm reset', async () => {
                    await app.call('sessions.reset', { sessionKey: s.sessionKey, idempotencyKey: app.key() }).then(() => app.toast('session reset', 'ok'), () => {});
                    clear(transcript);
                    void load();
                  })
                : null),
          ),
        );
      }
    }
    await load();
  },
};
