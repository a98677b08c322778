// Gateway status: uptime, memory, queue, connections, and each service's section.
import { h, clear, duration, json } from '../dom.ts';
import type { View } from '../app.ts';

function kv(obj: Record<string, unknown>): HTMLElement {
  const dl = h('dl', { class: 'kv' });
  for (const [k, v] of Object.entries(obj)) {
    dl.append(h('dt', null, k), h('dd', null, v !== null && typeof v === 'object' ? h('pre', null, json(v)) : String(v)));
  }
  return dl;
}

export const statusView: View = {
  id: 'status',
  title: 'Status',
  scope: 'operator.read',
  async render(root, app) {
    const body = h('div', { id: 'status' });
    const refresh = h('button', { type: 'button' }, 'Refresh');
    root.append(h('div', { class: 'toolbar' }, h('h2', null, 'Status'), refresh), body);
    async function load(): Promise<void> {
      const st = await app.call<Record<string, unknown>>('status');
      clear(body);
      const gw = (st.gateway ?? {}) as Record<string, unknown>;
      const mem = (st.memory ?? (gw.memory as unknown) ?? null) as Record<string, unknown> | null;
      const tiles = h('div', { class: 'tiles' },
        h('div', { class: 'tile' }, h('div', { class: 'muted small' }, 'uptime'), h('div', { class: 'big', id: 'uptime' }, duration(Number(gw.uptimeMs ?? 0)))),
        h('div', { class: 'tile' }, h('div', { class: 'muted small' }, 'version'), h('div', { class: 'big' }, String(gw.version ?? '?'))),
        h('div', { class: 'tile' }, h('div', { class: 'muted small' }, 'bind'), h('div', { class: 'big' }, String(gw.bind ?? '?'))),
        mem && typeof mem.rss === 'number' ? h('div', { class: 'tile' }, h('div', { class: 'muted small' }, 'memory (rss)'), h('div', { class: 'big' }, `${Math.round(Number(mem.rss) / 1048576)} MiB`)) : null,
      );
      body.append(tiles);
      const findings = (st.doctor as { findings?: { level?: string; message?: string; fix?: string }[] } | undefined)?.findings;
      if (Array.isArray(findings) && findings.length) {
        body.append(h('h3', null, 'Doctor'), h('ul', { class: 'findings' }, ...findings.map((f) => h('li', { class: f.level ?? '' }, `${f.level ?? ''} ${f.message ?? ''}${f.fix ? ` — ${f.fix}` : ''}`))));
      }
      for (const [name, section] of Object.entries(st)) {
        if (name === 'gateway' || name === 'doctor' || !section || typeof section !== 'object') continue;
        body.append(h('details', { class: 'section', open: name === 'bus' || name === 'agent' }, h('summary', null, name), kv(section as Record<string, unknown>)));
      }
      body.append(h('details', { class: 'section' }, h('summary', null, 'gateway'), kv(gw)));
    }
    refresh.addEventListener('click', () => void load());
    await load();
  },
};
