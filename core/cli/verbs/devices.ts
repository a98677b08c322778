import { CliError, UsageError } from '../../errors.ts';
import { requireGateway, cliErrorOf } from '../connect.ts';
import type { Verb } from '../main.ts';
import { OPERATOR_SCOPES } from '../../bus/devices.ts';
import { readRunInfo } from '../../gateway/lock.ts';
import { controlUiBase } from '../../ui/base-url.ts';
import { inviteQr, qrText } from '../invite-qr.ts';
import { loadConfig } from '../../config/config.ts';

const usage = `usage: carapace devices pending [--json]
       carapace devices approve CODE [--role operator|node] [--scopes a,b]
       carapace devices reject CODE
       carapace devices invite [--role operator|node] [--scopes a,b] [--link]
       carapace devices list [--json]
       carapace devices revoke ID

Devices (CLI, Control UI, phones, nodes) pair with the gateway once and then prove
their key on every connection. A new device's first connect shows a code like
ABCD-EFGH; approve it here. "invite --link" prints a one-time Control UI
link (http://HOST:PORT/#invite=CODE) that pairs the browser opening it with
every operator scope unless --scopes says otherwise. An invite is also printed as
a QR code for a phone's camera: a carapace://pair?url=WS-URL&code=CODE&gateway=KEY-ID
URI naming the gateway by an address other devices reach (gateway.publicUrl, else a
LAN address; none on loopback), and with --link the Control UI link, which a phone's
browser can use over https only (gateway.publicUrl). Scopes: operator.read, operator.write,
operator.pairing, operator.admin; node.invoke. Talks to the running gateway.`;

interface Device {
  id: string;
  role: string;
  scopes: string[];
  name: string | null;
  platform: string | null;
  revokedAt: number | null;
  lastSeenAt: number | null;
  owner: boolean;
  online: boolean;
}

interface Request {
  requestId: string;
  code: string;
  deviceId: string;
  role: string;
  scopes: string[];
  client: { name: string; version: string; platform: string };
  expiresAt: number;
}

function scopesOf(values: Record<string, unknown>): string[] | undefined {
  const s = values.scopes as string | undefined;
  if (s === undefined) return undefined;
  return s.split(',').map((x) => x.trim()).filter(Boolean);
}

function roleOf(values: Record<string, unknown>): string | undefined {
  const r = values.role as string | undefined;
  if (r !== undefined && r !== 'operator' && r !== 'node') throw new UsageError('--role must be operator or node');
  return r;
}

function ago(ts: number | null): string {
  if (ts === null) return 'never';
  const s = Math.round((Date.now() - ts) / 1000);
  return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

export const verb: Verb = {
  usage,
  options: { role: { type: 'string' }, scopes: { type: 'string' }, link: { type: 'boolean' } },
  async run(io, { positionals, values }) {
    const [sub, arg, ...rest] = positionals;
    if (rest.length) throw new UsageError(`unexpected argument ${rest[0]}`);
    const needsArg = sub === 'approve' || sub === 'reject' || sub === 'revoke';
    if (!['pending', 'approve', 'reject', 'invite', 'list', 'revoke'].includes(sub ?? '')) {
      throw new UsageError(sub === undefined ? 'devices needs a sub-verb' : `unknown sub-verb "${sub}"`);
    }
    if (needsArg && !arg) throw new UsageError(`devices ${sub} needs ${sub === 'revoke' ? 'a device ID' : 'a CODE'}`);
    if (!needsArg && arg) throw new UsageError(`devices ${sub} takes no argument`);
    const role = roleOf(values);
    const scopes = scopesOf(values);

    const client = await requireGateway(io.paths);
    try {
      switch (sub) {
        case 'pending': {
          const { requests } = await client.request<{ requests: Request[] }>('devices.pending');
          if (io.json) io.emit({ requests });
          else if (requests.length === 0) io.say('no pending pairing requests');
          else for (const r of requests) io.say(`${r.code}  ${r.deviceId.slice(0, 12)}  ${r.role} [${r.scopes.join(',')}]  ${r.client.name} ${r.client.version} (${r.client.platform})  expires in ${Math.max(0, Math.round((r.expiresAt - Date.now()) / 1000))}s`);
          return 0;
        }
        case 'approve': {
          const { device } = await client.request<{ device: Device }>('devices.approve', { code: arg, ...(role ? { role } : {}), ...(scopes ? { scopes } : {}) });
          if (io.json) io.emit({ device });
          else io.say(`approved ${device.id.slice(0, 12)} as ${device.role} [${device.scopes.join(',')}]`);
          return 0;
        }
        case 'reject': {
          const { rejected } = await client.request<{ rejected: Request }>('devices.reject', { code: arg });
          if (io.json) io.emit({ rejected });
          else io.say(`rejected ${rejected.code} (${rejected.deviceId.slice(0, 12)})`);
          return 0;
        }
        case 'invite': {
          const link = values.link === true;
          if (link && role === 'node') throw new UsageError('--link is for the Control UI (role operator)');
          // The Control UI needs every operator scope for its views; a plain invite defaults to read+write.
          const grant = link ? { role: 'operator', scopes: scopes ?? [...OPERATOR_SCOPES] } : { ...(role ? { role } : {}), ...(scopes ? { scopes } : {}) };
          const inv = await client.request<{ code: string; role: string; scopes: string[]; expiresAt: number; gatewayId: string }>('devices.invite', grant);
          const info = readRunInfo(io.paths);
          const host = info?.host ?? '127.0.0.1';
          const port = info?.port ?? 18789;
          let publicUrl: string | null | undefined = null;
          try {
            publicUrl = loadConfig(io.paths.config).config.gateway.publicUrl;
          } catch {
            // an invalid config.json (the gateway runs on its last valid one): the QR goes by the bind address
          }
          const qr = inviteQr(link ? 'browser' : 'device', inv, { host, port, publicUrl, tls: info?.tls });
          const showQr = () => io.say('payload' in qr ? `${qrText(qr.payload, io.isTTY)}\n${qr.payload}` : qr.none);
          if (link) {
            const url = `${controlUiBase(host, port, info?.tls !== undefined)}/#invite=${inv.code}`;
            if (io.json) io.emit({ ...inv, link: url, qr: 'payload' in qr ? qr.payload : null });
            else {
              io.say(url);
              io.say(`one use, expires ${new Date(inv.expiresAt).toISOString()}; grants ${inv.role} [${inv.scopes.join(',')}]`);
              showQr();
            }
            return 0;
          }
          if (io.json) io.emit({ ...inv, qr: 'payload' in qr ? qr.payload : null });
          else {
            io.say(`invite code: ${inv.code}`);
            io.say(`grants ${inv.role} [${inv.scopes.join(',')}], one use, expires ${new Date(inv.expiresAt).toISOString()}`);
            io.say(`gateway key id: ${inv.gatewayId} (the device should check it matches)`);
            showQr();
          }
          return 0;
        }
        case 'list': {
          const { devices } = await client.request<{ devices: Device[] }>('devices.list');
          if (io.json) io.emit({ devices });
          else for (const d of devices) io.say(`${d.id.slice(0, 12)}  ${d.owner ? 'owner' : d.role} [${d.scopes.join(',')}]  ${d.name ?? ''}  ${d.revokedAt ? 'REVOKED' : d.online ? 'online' : `last seen ${ago(d.lastSeenAt)}`}`);
          return 0;
        }
        case 'revoke': {
          let id = arg!.toLowerCase();
          if (!/^[0-9a-f]{64}$/.test(id)) {
            // A unique prefix (as `devices list` prints) is enough.
            const { devices } = await client.request<{ devices: Device[] }>('devices.list');
            const hits = devices.filter((d) => d.id.startsWith(id));
            if (id.length < 6 || hits.length !== 1) throw new CliError(hits.length > 1 ? `${arg} matches ${hits.length} devices; give more of the ID` : `no device with ID ${arg}`);
            id = hits[0].id;
          }
          const res = await client.request<{ device: Device; closedSockets: number }>('devices.revoke', { deviceId: id });
          if (io.json) io.emit(res);
          else io.say(`revoked ${id.slice(0, 12)}${res.closedSockets ? ` (closed ${res.closedSockets} live connection${res.closedSockets > 1 ? 's' : ''})` : ''}`);
          return 0;
        }
      }
      return 2;
    } catch (err) {
      throw cliErrorOf(err);
    } finally {
      client.close();
    }
  },
};
