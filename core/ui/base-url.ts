/** Where a browser on this machine reaches the gateway's Control UI (a wildcard bind is reached on loopback). */
export function controlUiBase(host: string, port: number, tls = false): string {
  const h = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `${tls ? 'https' : 'http'}://${h.includes(':') ? `[${h}]` : h}:${port}`;
}
