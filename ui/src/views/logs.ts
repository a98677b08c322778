// Live log tail (`logs.tail` then `log` events), filterable by session or text.
import { h, clear } from '../dom.ts';
import type { View } from '../app.ts';

const MAX_LINES = 500;

interface Record_ {
  ts?: number | string;
  time?: number | string;
  level?: string;
  msg?: string;
  message?: string;
  sessionKey?: string;
  [k: string]: unknown;
}

export const logsView: View = {
  id: 'logs',
  title: 'Logs',
  scope: 'operator.admin',
  async render(root, app) {
    const level = h('select', { 'aria-label': 'level', id: 'log-level' }, ...['debug', 'info', 'warn', 'error'].map((l) => h('option', { value: l, selected: l === 'info' }, l)));
    const filter = h('input', { id: 'log-filter', placeholder: 'filter: session key or text', 'aria-label': 'filter' });
    const pause = h('button', { type: 'button', id: 'log-pause' }, 'Pause');
    const lines = h('div', { class: 'loglines', id: 'log-lines' });
    root.append(h('div', { class: 'toolbar' }, h('h2', null, 'Logs'), level, filter, pause), lines);
    let paused = false;
    const minLevel = () => ['debug', 'info', 'warn', 'error'].indexOf(level.value);

    function matches(r: Record_, text: string): boolean {
      if (['debug', 'info', 'warn', 'error'].indexOf(String(r.level)) < minLevel()) return false;
      const f = filter.value.trim();
      if (!f) return true;
      return r.sessionKey === f || text.includes(f);
    }

    function line(r: Record_): HTMLElement {
      const { ts, time, level: lv, msg, message, ...rest } = r;
      const t = ts ?? time;
      const stamp = typeof t === 'number' ? new Date(t).toISOString().slice(11, 23) : String(t ?? '').slice(11, 23);
      const extra = Object.keys(rest).length ? ' ' + JSON.stringify(rest) : '';
      const text = `${stamp} ${String(lv ?? '').padEnd(5)} ${String(msg ?? message ?? '')}${extra}`;
      const el = h('div', { class: `logline ${String(lv ?? '')}` }, text);
      el.hidden = !matches(r, text);
      (el as HTMLElement & { record?: Record_ }).record = r;
      return el;
    }

    app.on('log', (payload) => {
      if (paused) return;
      lines.appendChild(line(payload as Record_));
      while (lines.childElementCount > MAX_LINES) lines.firstElementChild!.remove();
      lines.scrollTop = lines.scrollHeight;
    });
    const refilter = () => {
      for (const el of lines.children) {
        const r = (el as HTMLElement & { record?: Record_ }).record;
        if (r) (el as HTMLElement).hidden = !matches(r, el.textContent ?? '');
      }
    };
    filter.addEventListener('input', refilter);
    level.addEventListener('change', refilter);
    pause.addEventListener('click', () => {
      paused = !paused;
      pause.textContent = paused ? 'Resume' : 'Pause';
    });
    clear(lines);
    // Ask for everything from debug up once; the level select filters here, so changing it loses nothing.
    await app.call('logs.tail', { level: 'debug' });
    lines.appendChild(h('div', { class: 'logline muted' }, 'tailing…'));
  },
};
