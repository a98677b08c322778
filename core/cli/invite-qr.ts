// `carapace devices invite` also prints the invite as a QR code (protocol.md), for
// a phone's camera. A QR only helps when the device it is for can use it:
//   - a device app pairs over the bus: a carapace://pair URI naming the gateway by an
//     address other machines reach (its https publicUrl, else a LAN address);
//   - a phone's browser (`--link`) keeps its device key in WebCrypto, which browsers
//     offer only on a secure context: the Control UI link, over https only (the
//     gateway's own TLS, or a TLS proxy's publicUrl).
// Where neither holds, a sentence says why instead.
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { isIP } from 'node:net';
import { renderUnicodeCompact } from 'uqr';

const isLoopback = (host: string) => host === 'localhost' || host === '::1' || host.startsWith('127.');
// Container and VM bridges: addresses of this machine no phone on the LAN reaches.
const VIRTUAL = /^(docker|br-|veth|virbr|cni|flannel|podman)/;

/** Where another machine reaches a gateway bound to `host` (a wildcard: a LAN address), or null when none can. */
export function networkHost(host: string, interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces()): string | null {
  if (host === '0.0.0.0' || host === '::') {
    const lan = Object.entries(interfaces)
      .filter(([name]) => !VIRTUAL.test(name))
      .flatMap(([, list]) => list ?? [])
      .find((a) => a.family === 'IPv4' && !a.internal);
    return lan?.address ?? null;
  }
  return isLoopback(host) ? null : host;
}

/** `host:port`, IPv6 in brackets. */
export function hostPort(host: string, port: number): string {
  return `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}

/**
 * What a device pairs with: the gateway's bus URL, the one-time code, the gateway key
 * id to check, and for the gateway's own TLS the certificate's SHA-256 (hex) to pin.
 */
export function pairUri(wsUrl: string, code: string, gatewayId: string, certSha256?: string): string {
  const params = new URLSearchParams({ url: wsUrl, code, gateway: gatewayId });
  if (certSha256) params.set('cert', certSha256.replace(/:/g, '').toLowerCase());
  return `carapace://pair?${params}`;
}

export interface InviteTarget {
  /** The gateway's bind address and port (run/gateway.json). */
  host: string;
  port: number;
  /** `gateway.publicUrl`: where a TLS proxy in front of the gateway is reached. */
  publicUrl?: string | null;
  /** The gateway serves TLS itself (gateway.tls), with this certificate. */
  tls?: { sha256: string };
}

/** The QR payload for an invite, or why there is none. */
export function inviteQr(
  kind: 'device' | 'browser',
  invite: { code: string; gatewayId: string },
  at: InviteTarget,
  interfaces?: NodeJS.Dict<NetworkInterfaceInfo[]>,
): { payload: string } | { none: string } {
  const reachable = networkHost(at.host, interfaces);
  const own = reachable === null ? null : hostPort(reachable, at.port);
  const proxy = at.publicUrl && /^https:\/\//i.test(at.publicUrl) ? at.publicUrl.replace(/\/+$/, '') : null;
  const https = proxy ?? (at.tls && own ? `https://${own}` : null);
  if (kind === 'browser') {
    return https
      ? { payload: `${https}/#invite=${invite.code}` }
      : { none: "no QR code: a phone's browser pairs only over https (it keeps its device key in WebCrypto, which plain http does not offer); set gateway.tls, or gateway.publicUrl to the https address of a TLS proxy in front of the gateway" };
  }
  if (https) return { payload: pairUri(`${https.replace(/^https/i, 'wss')}/ws`, invite.code, invite.gatewayId, proxy ? undefined : at.tls?.sha256) };
  return own === null
    ? { none: 'no QR code: the gateway listens on loopback only, which no other device can reach (gateway.bind in config.json; carapace doctor explains the risk)' }
    : { payload: pairUri(`ws://${own}/ws`, invite.code, invite.gatewayId) };
}

/**
 * A QR code as half-block characters with the standard 4-module quiet zone; blocks
 * are the light modules, as terminals draw text bright on dark. On a terminal the
 * colours are set (white on black), so a light theme does not make it a negative.
 */
export function qrText(data: string, tty: boolean): string {
  const lines = renderUnicodeCompact(data, { border: 4 }).split('\n');
  return (tty ? lines.map((l) => `\x1b[97;40m${l}\x1b[0m`) : lines).join('\n');
}
