// The per-connection challenge–response (protocol.md "Handshake"): pure checks,
// in the spec's order, each refusal with its code. The socket plumbing is server.ts.
import { CarapaceError } from '../errors.ts';
import { connectPayload, helloPayload } from './signing.ts';
import { deviceIdOf, fromB64, sign, verify, type KeyPair } from '../identity/keys.ts';
import { check, validateConnectParams, PROTOCOL_VERSION, type ConnectParams } from './frames.ts';
import { hasScope, scopesForRole, type DeviceRecord, type DeviceStore, type PairingRequest } from './devices.ts';
import type { Clock } from '../clock.ts';

export const SIGNED_AT_SKEW_MS = 60_000;

export interface Hello {
  type: 'hello';
  protocol: number;
  gateway: { id: string; publicKey: string; version: string };
  device: { id: string; role: 'operator' | 'node'; scopes: string[] };
  policy: { maxPayload: number; heartbeatMs: number };
  signature: string;
}

export interface HandshakeDeps {
  gateway: KeyPair;
  devices: DeviceStore;
  clock: Clock;
  version: string;
  policy: () => { maxPayload: number; heartbeatMs: number };
}

export type HandshakeResult =
  | { ok: true; device: DeviceRecord; role: 'operator' | 'node'; scopes: string[]; hello: Hello; viaInvite: boolean }
  | {
      ok: false;
      error: CarapaceError;
      pairing?: PairingRequest & { fresh: boolean };
      /** Set when the device proved its key and was refused all the same (unpaired, revoked, a role or scope it lacks): the failure counts against it. */
      deviceId?: string;
    };

/**
 * Check one `connect` against the nonce this socket was sent. `nonceUnused` is
 * false once the socket has spent its nonce on an earlier attempt.
 */
export function verifyConnect(rawParams: unknown, nonce: string, nonceUnused: boolean, deps: HandshakeDeps): HandshakeResult {
  try {
    return run(rawParams, nonce, nonceUnused, deps);
  } catch (err) {
    if (err instanceof CarapaceError) return { ok: false, error: err };
    throw err;
  }
}

function unauthorized(reason: string, message: string): CarapaceError {
  return new CarapaceError('UNAUTHORIZED', message, { reason });
}

function run(rawParams: unknown, nonce: string, nonceUnused: boolean, deps: HandshakeDeps): HandshakeResult {
  const p: ConnectParams = check(validateConnectParams, rawParams ?? {}, '/params');
  if (p.protocol !== PROTOCOL_VERSION) {
    throw new CarapaceError('UNSUPPORTED_PROTOCOL', `protocol ${p.protocol} is not supported; this gateway speaks ${PROTOCOL_VERSION}`, { supported: [PROTOCOL_VERSION] });
  }
  const publicKey = fromB64(p.device.publicKey, 32);
  if (!publicKey) throw new CarapaceError('INVALID_REQUEST', 'device.publicKey is not canonical base64 of 32 bytes', { pointer: '/params/device/publicKey' });
  if (deviceIdOf(publicKey) !== p.device.id) throw unauthorized('device-id-mismatch', 'device.id is not the sha256 of device.publicKey');
  if (!nonceUnused || p.device.nonce !== nonce) throw unauthorized('nonce', 'the nonce is not the one this connection was challenged with, or was already used');
  const now = deps.clock.now();
  if (Math.abs(now - p.device.signedAt) > SIGNED_AT_SKEW_MS) throw unauthorized('stale', 'signedAt is more than 60 s away from the gateway clock');
  const message = connectPayload({ gatewayId: deps.gateway.id, deviceId: p.device.id, role: p.role, scopes: p.scopes, nonce, signedAt: p.device.signedAt });
  if (!verify(message, p.device.signature, publicKey)) throw unauthorized('signature', 'the signature does not verify with device.publicKey');
  try {
    return admit(p, nonce, deps);
  } catch (err) {
    if (err instanceof CarapaceError) return { ok: false, error: err, deviceId: p.device.id };
    throw err;
  }
}

/** The device proved its key: is it paired, with the role and scopes it asks for? */
function admit(p: ConnectParams, nonce: string, deps: HandshakeDeps): HandshakeResult {
  let device = deps.devices.get(p.device.id);
  let viaInvite = false;
  if (device?.revokedAt != null) throw unauthorized('revoked', 'this device was revoked');
  if (!device) {
    const who = { deviceId: p.device.id, publicKey: p.device.publicKey, client: p.client };
    if (p.pairingCode !== undefined) {
      device = deps.devices.redeemInvite(p.pairingCode, who);
      viaInvite = device !== null;
    }
    if (!device) {
      const pairing = deps.devices.requestPairing({ ...who, role: p.role, scopes: p.scopes });
      const details: Record<string, unknown> = { requestId: pairing.requestId, code: pairing.code, expiresAt: pairing.expiresAt };
      if (p.pairingCode !== undefined) details.pairingCode = 'invalid';
      return {
        ok: false,
        pairing,
        deviceId: p.device.id,
        error: new CarapaceError('PAIRING_REQUIRED', `this device is not paired yet; approve it with: carapace devices approve ${pairing.code}`, details),
      };
    }
  }
  if (p.role !== device.role) throw new CarapaceError('FORBIDDEN', `this device is paired as ${device.role}, not ${p.role}`, { role: p.role, grantedRole: device.role });
  // A name no role has is granted to nobody, admin included (admin implies the real ones only).
  const known = scopesForRole(device.role);
  const missing = p.scopes.find((s) => !known.includes(s) || !hasScope(device.scopes, s));
  if (missing) throw new CarapaceError('FORBIDDEN', `scope ${missing} was not granted to this device`, { missingScope: missing });

  const scopes = [...p.scopes].sort();
  const hello: Hello = {
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    gateway: { id: deps.gateway.id, publicKey: deps.gateway.publicKeyB64, version: deps.version },
    device: { id: device.id, role: device.role, scopes },
    policy: deps.policy(),
    signature: sign(helloPayload({ gatewayId: deps.gateway.id, deviceId: device.id, nonce }), deps.gateway),
  };
  return { ok: true, device, role: device.role, scopes, hello, viaInvite };
}

