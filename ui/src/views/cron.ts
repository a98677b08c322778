// Scheduled jobs: list, add (cron expression, interval or one time), run now, remove.
import { h, clear, ago, confirmButton } from '../dom.ts';
import type { View } from '../app.ts';

type Job = Record<string, unknown> & { id: string };

export const cronView: View = {
  id: 'cron',
  title: 'Cron',
  scope: 'operator.read',
  async render(root, app) {
    const list = h('div', { class: 'cards', id: 'cron-jobs' });
    const name = h('input', { name: 'name', placeholder: 'name (optional)', 'aria-label': 'name' });
    const kind = h('select', { name: 'kind', 'aria-label': 'schedule kind' }, h('option', { value: 'cron' }, 'cron'), h('option', { value: 'every' }, 'every'), h('option', { value: 'at' }, 'at'));
    const when = h('input', { name: 'when', placeholder: '0 9 * * 1-5  ·  30m  ·  2026-01-01T09:00', 'aria-label': 'schedule', required: true });
    const message = h('textarea', { name: 'message', placeholder: 'what the agent should do', rows: 2, 'aria-label': 'message', required: true });
    const form = h('form', { class: 'card form', id: 'cron-add' }, h('strong', null, 'Add a job'), name, h('div', { class: 'row' }, kind, when), message, h('button', { type: 'submit', class: 'primary' }, 'Add'));
    root.append(h('h2', null, 'Scheduled jobs'));
    if (app.has('operator.write')) root.append(form);
    root.append(list);

    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const spec: Record<string, unknown> = { message: message.value.trim(), idempotencyKey: app.key() };
      if (name.value.trim()) spec.name = name.value.trim();
      spec[kind.value] = when.value.trim();
      try {
        await app.call('cron.add', spec);
        app.toast('job added', 'ok');
        form.reset();
        void load();
      } catch {
        // shown by call
      }
    });

    async function load(): Promise<void> {
      const res = await app.tryCall<{ jobs: Job[] }>('cron.list', {});
      clear(list);
      if (res === null) return void list.appendChild(h('p', { class: 'muted' }, 'This gateway does not offer cron yet.'));
      if (res.jobs.length === 0) list.appendChild(h('p', { class: 'muted empty' }, 'No jobs.'));
      for (const j of res.jobs) {
        const schedule = String(j.cron ?? (j.every !== undefined ? `every ${String(j.every)}` : j.at !== undefined ? `at ${String(j.at)}` : j.schedule ?? ''));
        list.appendChild(
          h('div', { class: 'card', 'data-job': j.id },
            h('div', { class: 'card-head' }, h('strong', null, String(j.name ?? j.id)), h('span', { class: 'mono small' }, schedule)),
            h('div', { class: 'small' }, String(j.message ?? '')),
            h('div', { class: 'muted small' }, `next ${ago(j.nextRunAt as number | undefined)} · last ${ago(j.lastRunAt as number | undefined)}${j.lastStatus ? ` (${String(j.lastStatus)})` : ''}`),
            app.has('operator.write')
              ? h('div', { class: 'actions' },
                  h('button', { type: 'button', 'data-action': 'run', onclick: () => void app.call('cron.run', { id: j.id, idempotencyKey: app.key() }).then(() => { app.toast('started', 'ok'); void load(); }, () => {}) }, 'Run now'),
                  confirmButton('Remove', 'Confirm remove', async () => {
                    await app.call('cron.remove', { id: j.id, idempotencyKey: app.key() }).catch(() => {});
                    void load();
                  }))
              : null,
          ),
        );
      }
    }
    await load();
  },
};
