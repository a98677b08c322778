// Who asks to be let in: new devices (browsers, phones, CLIs, nodes) with the
// code they show, and chat senders on channels with `dmPolicy: pairing`.
import { h, clear, ago, shortId } from '../dom.ts';
import type { View } from '../app.ts';

interface DeviceRequest {
  requestId: string;
  code: string;
  deviceId: string;
  role: string;
  scopes: string[];
  client: { name: string; version: string; platform: string };
  expiresAt: number;
}

interface SenderRequest {
  channel: string;
  senderId: string;
  senderName: string | null;
  code: string;
  createdAt: number;
  expiresAt: number;
}

export const pairingView: View = {
  id: 'pairing',
  title: 'Pairing',
  scope: 'operator.pairing',
  async render(root, app) {
    const devices = h('div', { class: 'cards', id: 'device-requests' });
    const senders = h('div', { class: 'cards', id: 'sender-requests' });
    root.append(h('h2', null, 'Devices waiting to pair'), devices, h('h2', null, 'Chat senders waiting'), senders);

    async function loadDevices(): Promise<void> {
      const { requests } = await app.call<{ requests: DeviceRequest[] }>('devices.pending');
      clear(devices);
      if (requests.length === 0) devices.appendChild(h('p', { class: 'muted empty' }, 'No device is waiting.'));
      for (const r of requests) {
        const act = (method: string, verb: string) => async () => {
          await app.call(method, { code: r.code }).then(() => app.toast(`${verb} ${r.code}`, 'ok'), () => {});
          void loadDevices();
        };
        devices.appendChild(
          h('div', { class: 'card', 'data-code': r.code },
            h('div', { class: 'card-head' }, h('span', { class: 'code' }, r.code), h('span', { class: 'muted' }, `expires ${ago(r.expiresAt)}`)),
            h('div', null, `${r.client.name} ${r.client.version} (${r.client.platform})`),
            h('div', { class: 'muted small' }, `${r.role} · ${r.scopes.join(', ') || 'no scopes'} · ${shortId(r.deviceId)}`),
            h('p', { class: 'muted small' }, 'Approve only if the same code shows on the device you are pairing.'),
            h('div', { class: 'actions' },
              h('button', { type: 'button', class: 'primary', 'data-action': 'approve', onclick: act('devices.approve', 'approved') }, 'Approve'),
              h('button', { type: 'button', class: 'danger', 'data-action': 'reject', onclick: act('devices.reject', 'rejected') }, 'Reject'))),
        );
      }
    }

    async function loadSenders(): Promise<void> {
      const res = await app.tryCall<{ requests: SenderRequest[] }>('pairing.list', {});
      clear(senders);
      if (res === null) return void senders.appendChild(h('p', { class: 'muted' }, 'This gateway does not offer chat-sender pairing yet.'));
      if (res.requests.length === 0) senders.appendChild(h('p', { class: 'muted empty' }, 'No chat sender is waiting.'));
      for (const r of res.requests) {
        const act = (method: string, verb: string) => async () => {
          await app.call(method, { channel: r.channel, code: r.code, idempotencyKey: app.key() }).then(() => app.toast(`${verb} ${r.code}`, 'ok'), () => {});
          void loadSenders();
        };
        senders.appendChild(
          h('div', { class: 'card', 'data-code': r.code },
            h('div', { class: 'card-head' }, h('span', { class: 'code' }, r.code), h('span', { class: 'muted' }, `expires ${ago(r.expiresAt)}`)),
            h('div', null, `${r.senderName ?? r.senderId} on ${r.channel}`),
            h('div', { class: 'muted small' }, `sender ${r.senderId} · asked ${ago(r.createdAt)}`),
            h('div', { class: 'actions' },
              h('button', { type: 'button', class: 'primary', 'data-action': 'approve', onclick: act('pairing.approve', 'approved') }, 'Approve'),
              h('button', { type: 'button', class: 'danger', 'data-action': 'reject', onclick: act('pairing.reject', 'rejected') }, 'Reject'))),
        );
      }
    }

    app.on('device.pairing.requested', () => void loadDevices());
    app.on('pairing.requested', () => void loadSenders());
    await Promise.all([loadDevices(), loadSenders()]);
  },
};
