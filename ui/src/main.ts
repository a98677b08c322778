// The Control UI shell: reads the link, connects to its own origin, and shows
// either the pairing screen or the views with a nav (sidebar on a desktop, a
// scrolling tab bar on a phone).
import { h, clear, append, duration } from './dom.ts';
import { readLink, ownBusUrl } from './link.ts';
import { createConnection, type ConnState } from './conn.ts';
import type { App, View } from './app.ts';
import { chatView } from './views/chat.ts';
import { pairingView } from './views/pairing.ts';
import { devicesView } from './views/devices.ts';
import { pluginsView } from './views/plugins.ts';
import { sessionsView } from './views/sessions.ts';
import { cronView } from './views/cron.ts';
import { approvalsView } from './views/approvals.ts';
import { logsView } from './views/logs.ts';
import { statusView } from './views/status.ts';

const VIEWS: View[] = [chatView, approvalsView, pairingView, devicesView, sessionsView, cronView, pluginsView, logsView, statusView];

const link = readLink(location);
// The invite is single-use: keep it out of history, bookmarks and screenshots of the address bar.
if (link.invite || location.search) history.replaceState(null, '', location.pathname + (location.hash.startsWith('#/') ? location.hash.split('?')[0] : ''));

const body = document.body;
const banner = h('div', { class: 'banner', id: 'link-warning', hidden: !link.foreignGateway });
if (link.foreignGateway) {
  append(banner, [
    h('strong', null, 'Ignored a gateway address in the link. '),
    `The link you opened asked this page to connect to ${link.foreignGateway}. This page only ever talks to the gateway that served it (${location.host}); to use another gateway, open that gateway's own page.`,
    ' ',
    h('button', { type: 'button', onclick: () => (banner.hidden = true) }, 'Dismiss'),
  ]);
}
const conn = h('span', { class: 'conn', id: 'conn-state' }, 'connecting…');
const nav = h('nav', { id: 'nav' });
const main = h('main', { id: 'view' });
const toasts = h('div', { class: 'toasts', 'aria-live': 'polite' });
clear(body);
append(body, [banner, h('header', null, h('span', { class: 'brand' }, 'Carapace'), conn), h('div', { class: 'layout' }, nav, main), toasts]);

let state: ConnState = { kind: 'starting' };
let current: string = location.hash.startsWith('#/') ? location.hash.slice(2).split('?')[0]! : 'chat';
let disposers: (() => void)[] = [];
let renderToken = 0;

function toast(message: string, kind: 'error' | 'ok' = 'error'): void {
  const t = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, message);
  toasts.appendChild(t);
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 3000);
}

const connection = createConnection(ownBusUrl(location), (s) => {
  const wasConnected = state.kind === 'connected';
  state = s;
  renderConn();
  if (s.kind === 'connected' || !wasConnected || s.kind === 'failed') render();
});

function renderConn(): void {
  const s = state;
  conn.className = `conn ${s.kind}`;
  conn.textContent =
    s.kind === 'connected' ? `connected · ${s.deviceId.slice(0, 8)}`
    : s.kind === 'offline' ? (s.retryInMs ? `offline · retry in ${duration(s.retryInMs)}` : 'reconnecting…')
    : s.kind === 'pairing' ? 'waiting for approval'
    : s.kind === 'failed' ? 'not connected'
    : s.kind === 'unsupported' ? 'unsupported browser'
    : 'connecting…';
}

function makeApp(s: Extract<ConnState, { kind: 'connected' }>): App {
  const client = s.client;
  const app: App = {
    client,
    hello: s.hello,
    deviceId: s.deviceId,
    has: (scope) => s.hello.device.scopes.includes(scope) || (scope.startsWith('operator.') && s.hello.device.scopes.includes('operator.admin')),
    async call<T>(method: string, params: Record<string, unknown> = {}) {
      try {
        return await client.request<T>(method, params);
      } catch (err) {
        const e = err as { code?: string; message?: string };
        toast(`${method}: ${e.message ?? String(err)}`);
        throw err;
      }
    },
    async tryCall<T>(method: string, params: Record<string, unknown> = {}) {
      try {
        return await client.request<T>(method, params);
      } catch (err) {
        const e = err as { code?: string; message?: string; details?: { method?: string } };
        if (e.code === 'NOT_FOUND' && e.details?.method === method) return null;
        toast(`${method}: ${e.message ?? String(err)}`);
        throw err;
      }
    },
    on(event, handler) {
      disposers.push(client.on(event, handler));
    },
    async subscribe(topics, handler) {
      const list = disposers;
      const off = await client.subscribe(topics, (m) => handler(m.payload));
      // The view may have been left while the subscription was on its way.
      if (list === disposers) disposers.push(off);
      else off();
    },
    toast,
    go(view) {
      location.hash = `#/${view}`;
    },
    key: () => crypto.randomUUID(),
  };
  return app;
}

function renderNav(app: App | null): void {
  clear(nav);
  for (const v of VIEWS) {
    if (app && !app.has(v.scope)) continue;
    nav.appendChild(h('a', { href: `#/${v.id}`, class: v.id === current ? 'active' : '', 'data-view': v.id }, v.title));
  }
  nav.hidden = app === null;
}

function render(): void {
  for (const d of disposers) d();
  disposers = [];
  const token = ++renderToken;
  clear(main);
  const s = state;
  if (s.kind !== 'connected') {
    renderNav(null);
    main.appendChild(gateScreen(s));
    return;
  }
  const app = makeApp(s);
  const view = VIEWS.find((v) => v.id === current && app.has(v.scope)) ?? VIEWS.find((v) => app.has(v.scope));
  renderNav(app);
  if (!view) {
    main.appendChild(h('p', null, 'This browser holds no scope that opens a view.'));
    return;
  }
  const root = h('section', { class: `view view-${view.id}`, 'data-view': view.id });
  main.appendChild(root);
  void Promise.resolve(view.render(root, app)).catch((err: unknown) => {
    if (token !== renderToken) return;
    root.appendChild(h('p', { class: 'error' }, `Could not load: ${(err as Error).message}`));
  });
}

function gateScreen(s: ConnState): HTMLElement {
  const box = h('section', { class: 'gate', id: 'gate', 'data-state': s.kind });
  switch (s.kind) {
    case 'pairing':
      append(box, [
        h('h1', null, 'Pair this browser'),
        s.inviteRejected ? h('p', { class: 'error' }, 'The invite in the link was not accepted (used, expired or mistyped).') : null,
        h('p', null, 'On the gateway host, run:'),
        h('pre', { class: 'cmd' }, `carapace devices approve ${s.code}`),
        h('p', null, 'or approve it from another paired Control UI. Pairing code:'),
        h('p', { class: 'code', id: 'pairing-code' }, s.code),
        h('p', { class: 'muted' }, `Device ${s.deviceId.slice(0, 16)}… · the request expires in ${duration(Math.max(0, s.expiresAt - Date.now()))}. This page checks every ${10} s.`),
        h('button', { type: 'button', class: 'primary', id: 'check-now', onclick: () => connection.retry() }, 'I approved it — connect'),
      ]);
      break;
    case 'failed':
      append(box, [h('h1', null, 'Not connected'), h('p', { class: 'error', id: 'fail-reason' }, s.message)]);
      if (s.reason === 'revoked' || s.reason === 'gateway-key') {
        box.appendChild(
          h('button', {
            type: 'button',
            id: 'repair',
            onclick: async () => {
              await connection.reset();
              void connection.start(null);
            },
          }, s.reason === 'revoked' ? 'Make a new key and pair again' : 'Forget this gateway and pair again'),
        );
      } else box.appendChild(h('button', { type: 'button', onclick: () => void connection.start(null) }, 'Try again'));
      break;
    case 'unsupported':
      append(box, [h('h1', null, 'This browser cannot pair here'), h('p', { class: 'error' }, s.reason)]);
      break;
    case 'offline':
      append(box, [h('h1', null, 'Gateway unreachable'), h('p', null, s.message), h('button', { type: 'button', onclick: () => connection.retry() }, 'Retry now')]);
      break;
    default:
      append(box, [h('p', { class: 'muted' }, 'Connecting to the gateway…')]);
  }
  return box;
}

window.addEventListener('hashchange', () => {
  if (!location.hash.startsWith('#/')) return;
  const next = location.hash.slice(2).split('?')[0]!;
  if (next === current) return;
  current = next;
  render();
});

renderConn();
render();
void connection.start(link.invite);
