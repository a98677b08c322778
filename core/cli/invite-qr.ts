// `carapace devices invite` also prints the invite as a QR code (protocol.md), for
// a phone's camera. A QR only helps a device that can reach the gateway, so it
// names the gateway by an address other machines can use; a gateway listening on
// loopback gets no QR and a plain sentence saying why.
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { isIP } from 'node:net';
import { renderUnicodeCompact } from 'uqr';

const isLoopback = (host: string) => host === 'localhost' || host === '::1' || host.startsWith('127.');

/** Where another machine reaches a gateway bound to `host` (a wildcard: the first LAN address), or null when none can. */
export function networkHost(host: string, interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces()): string | null {
  if (host === '0.0.0.0' || host === '::') {
    const lan = Object.values(interfaces)
      .flat()
      .find((a) => a && a.family === 'IPv4' && !a.internal);
    return lan?.address ?? null;
  }
  return isLoopback(host) ? null : host;
}

/** `host:port`, IPv6 in brackets. */
export function hostPort(host: string, port: number): string {
  return `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}

/** What a device pairs with: the gateway's bus URL, the one-time code and the gateway key id to check. */
export function pairUri(wsUrl: string, code: string, gatewayId: string): string {
  return `carapace://pair?${new URLSearchParams({ url: wsUrl, code, gateway: gatewayId })}`;
}

/**
 * A QR code as half-block characters: blocks are the light modules, as terminals
 * draw text bright on dark. On a terminal the colours are set (white on black), so a
 * light theme does not turn the code into its negative.
 */
export function qrText(data: string, tty: boolean): string {
  const lines = renderUnicodeCompact(data, { border: 2 }).split('\n');
  return (tty ? lines.map((l) => `\x1b[97;40m${l}\x1b[0m`) : lines).join('\n');
}
