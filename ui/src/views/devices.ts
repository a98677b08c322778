// Paired devices: role, scopes, online or last seen; revoke ends their sockets at once.
import { h, clear, ago, shortId, confirmButton } from '../dom.ts';
import type { View } from '../app.ts';

interface Device {
  id: string;
  role: string;
  scopes: string[];
  name: string | null;
  platform: string | null;
  pairedAt: number;
  revokedAt: number | null;
  lastSeenAt: number | null;
  owner: boolean;
  online: boolean;
}

export const devicesView: View = {
  id: 'devices',
  title: 'Devices',
  scope: 'operator.pairing',
  async render(root, app) {
    const list = h('div', { class: 'cards', id: 'devices' });
    root.append(h('h2', null, 'Paired devices'), list);
    async function load(): Promise<void> {
      const { devices } = await app.call<{ devices: Device[] }>('devices.list');
      clear(list);
      for (const d of devices) {
        const self = d.id === app.deviceId;
        const state = d.revokedAt ? h('span', { class: 'pill bad' }, 'revoked') : d.online ? h('span', { class: 'pill ok' }, 'online') : h('span', { class: 'pill' }, `seen ${ago(d.lastSeenAt)}`);
        list.appendChild(
          h('div', { class: `card${d.revokedAt ? ' dim' : ''}`, 'data-device': d.id },
            h('div', { class: 'card-head' }, h('strong', null, d.owner ? 'owner (this host)' : (d.name ?? 'device') + (self ? ' — this browser' : '')), state),
            h('div', { class: 'muted small mono' }, shortId(d.id)),
            h('div', { class: 'small' }, `${d.role} · ${d.scopes.join(', ')}`),
            h('div', { class: 'muted small' }, [d.platform, `paired ${ago(d.pairedAt)}`].filter(Boolean).join(' · ')),
            d.owner || d.revokedAt
              ? null
              : h('div', { class: 'actions' }, confirmButton(self ? 'Revoke this browser' : 'Revoke', 'Confirm revoke', async () => {
                  await app.call('devices.revoke', { deviceId: d.id }).then(() => app.toast(`revoked ${shortId(d.id)}`, 'ok'), () => {});
                  if (!self) void load();
                })),
          ),
        );
      }
    }
    app.on('device.pairing.requested', () => void load());
    await load();
  },
};
