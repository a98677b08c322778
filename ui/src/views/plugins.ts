// Installed plugins: what runs, where (isolate or worker), who signed it, what it may do.
import { h, clear, json } from '../dom.ts';
import type { View } from '../app.ts';

type Plugin = Record<string, unknown> & { id: string };

function permissionsText(p: unknown): string {
  if (!p || typeof p !== 'object') return 'none';
  const out: string[] = [];
  for (const [k, v] of Object.entries(p as Record<string, unknown>)) {
    if (Array.isArray(v)) out.push(`${k}: ${v.map((x) => (typeof x === 'string' ? x : json(x))).join(', ')}`);
    else if (v && typeof v === 'object') out.push(`${k}: ${Object.entries(v as Record<string, unknown>).map(([a, b]) => `${a}=${Array.isArray(b) ? b.join(',') : String(b)}`).join('; ')}`);
    else if (v !== undefined && v !== false) out.push(`${k}: ${String(v)}`);
  }
  return out.length ? out.join('\n') : 'none';
}

export const pluginsView: View = {
  id: 'plugins',
  title: 'Plugins',
  scope: 'operator.read',
  async render(root, app) {
    const list = h('div', { class: 'cards', id: 'plugins' });
    root.append(h('h2', null, 'Plugins'), list);
    let res = await app.tryCall<{ plugins: Plugin[] }>('plugins.list', {});
    if (res === null) {
      // Until plugins.list is on the bus, status carries the host's view.
      const st = await app.call<Record<string, unknown>>('status');
      const host = (st.plugins ?? {}) as { plugins?: Plugin[] };
      res = { plugins: Array.isArray(host.plugins) ? host.plugins : [] };
    }
    clear(list);
    if (res.plugins.length === 0) list.appendChild(h('p', { class: 'muted empty' }, 'No plugins installed.'));
    for (const p of res.plugins) {
      const state = String(p.state ?? (p.enabled === false ? 'disabled' : 'unknown'));
      const publisher = (p.publisher ?? p.signer ?? p.keyId) as unknown;
      list.appendChild(
        h('div', { class: 'card', 'data-plugin': p.id },
          h('div', { class: 'card-head' }, h('strong', null, `${p.id}${p.version ? ` ${String(p.version)}` : ''}`), h('span', { class: `pill ${state === 'running' || state === 'ready' ? 'ok' : state === 'failed' || state === 'crashed' ? 'bad' : ''}` }, state)),
          h('div', { class: 'small' }, `${String(p.kind ?? '?')} · ${String(p.runtime ?? '?')} · restarts ${String(p.restarts ?? 0)}`),
          h('div', { class: 'muted small' }, `publisher ${typeof publisher === 'string' ? publisher : publisher ? json(publisher) : 'unknown'}`),
          h('details', null, h('summary', null, 'permissions'), h('pre', { class: 'args' }, permissionsText(p.permissions ?? p.grant))),
        ),
      );
    }
  },
};
