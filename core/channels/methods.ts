import type { MethodRegistry } from '../bus/types.ts';
import type { PairingRequest, PairingStore } from './pairing.ts';

// pairing.list / pairing.approve / pairing.reject (protocol.md): chat senders
// waiting for DM access. Scope operator.pairing; approve and reject are
// side-effecting, so they carry an idempotencyKey.

const channel = { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,63}$' } as const;
const code = { type: 'string', minLength: 4, maxLength: 16 } as const;
const idempotencyKey = { type: 'string', minLength: 1, maxLength: 128 } as const;

export function registerPairingMethods(
  methods: MethodRegistry,
  pairing: PairingStore,
  hooks: { onApproved?: (req: PairingRequest) => void } = {},
): void {
  methods.register<{ channel?: string }, { requests: PairingRequest[] }>('pairing.list', {
    scope: 'operator.pairing',
    params: { type: 'object', properties: { channel }, additionalProperties: false },
    handler: (p) => ({ requests: pairing.list(p.channel) }),
  });
  const resolve = { type: 'object', properties: { channel, code, idempotencyKey }, required: ['channel', 'code'], additionalProperties: false };
  methods.register<{ channel: string; code: string }, { request: PairingRequest }>('pairing.approve', {
    scope: 'operator.pairing',
    params: resolve,
    handler: (p, caller) => {
      const request = pairing.approve(p.channel, p.code, `device:${caller.deviceId}`);
      hooks.onApproved?.(request);
      return { request };
    },
  });
  methods.register<{ channel: string; code: string }, { request: PairingRequest }>('pairing.reject', {
    scope: 'operator.pairing',
    params: resolve,
    handler: (p, caller) => ({ request: pairing.reject(p.channel, p.code, `device:${caller.deviceId}`) }),
  });
}
