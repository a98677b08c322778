// The exact lines each side of the handshake signs (protocol.md "Handshake"), in
// one place for the gateway and every client — the browser's too, so this module
// imports nothing.

export function connectPayload(p: { gatewayId: string; deviceId: string; role: string; scopes: readonly string[]; nonce: string; signedAt: number }): string {
  return ['carapace-connect-v1', p.gatewayId, p.deviceId, p.role, [...p.scopes].sort().join(','), p.nonce, String(p.signedAt)].join('\n');
}

export function helloPayload(p: { gatewayId: string; deviceId: string; nonce: string }): string {
  return ['carapace-hello-v1', p.gatewayId, p.deviceId, p.nonce].join('\n');
}
