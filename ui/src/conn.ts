// Connecting this browser to its own gateway as a paired device: create or load
// the key, pin the gateway key on first pairing, redeem an invite from the link
// or show the pairing code and wait for the owner, narrow the requested scopes
// to what was granted, and report every state to the shell.
import { BusClient, type Hello } from '../../core/client/client.ts';
import type { CarapaceError } from '../../core/errors.ts';
import { cryptoUnavailable, generateDeviceKey, signerOf, webVerify } from './crypto.ts';
import { forgetDevice, loadDevice, saveDevice, type StoredDevice } from './keystore.ts';

export const ALL_SCOPES = ['operator.read', 'operator.write', 'operator.pairing', 'operator.admin'];

/** Polling for approval costs a failed handshake each time, and 10 a minute lock the address out (the CLI too): stay well under. */
export const PAIRING_POLL_MS = 10_000;

export type ConnState =
  | { kind: 'starting' }
  | { kind: 'unsupported'; reason: string }
  | { kind: 'pairing'; code: string; expiresAt: number; deviceId: string; inviteRejected: boolean }
  | { kind: 'connected'; hello: Hello; client: BusClient; deviceId: string }
  | { kind: 'offline'; message: string; retryInMs: number }
  | { kind: 'failed'; reason: 'revoked' | 'gateway-key' | 'forbidden' | 'other'; message: string };

export interface Connection {
  start(invite: string | null): Promise<void>;
  /** Try again now (after the owner approved, or after a failure). */
  retry(): void;
  /** Forget this browser's key and pin (the user asked): next start pairs afresh. */
  reset(): Promise<void>;
}

export function createConnection(url: string, onState: (s: ConnState) => void): Connection {
  let wake: (() => void) | null = null;
  let running = false;

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        wake = null;
        resolve();
      }
      wake = done;
    });

  async function device(): Promise<StoredDevice> {
    const have = await loadDevice();
    if (have) return have;
    const fresh: StoredDevice = { ...(await generateDeviceKey()), pin: null, scopes: null };
    await saveDevice(fresh);
    return fresh;
  }

  async function start(invite: string | null): Promise<void> {
    if (running) return;
    running = true;
    const why = cryptoUnavailable();
    if (why) {
      running = false;
      return onState({ kind: 'unsupported', reason: why });
    }
    onState({ kind: 'starting' });
    let d: StoredDevice;
    try {
      d = await device();
    } catch (err) {
      running = false;
      return onState({ kind: 'unsupported', reason: `cannot keep a device key here: ${(err as Error).message}` });
    }
    let scopes = d.scopes ?? [...ALL_SCOPES];
    let offlineAttempt = 0;
    for (;;) {
      const client = new BusClient({
        url,
        signer: signerOf(d),
        verify: webVerify,
        scopes,
        pin: d.pin,
        onPin: (pin) => {
          d.pin = pin;
          void saveDevice(d);
        },
        pairingCode: invite ?? undefined,
        client: { name: 'carapace-ui', version: '1', platform: (navigator.platform || 'web').slice(0, 64) },
        reconnect: true,
        backoff: { minMs: 500, maxMs: 10_000 },
      });
      try {
        const hello = await client.connect();
        invite = null;
        d.scopes = hello.device.scopes;
        await saveDevice(d);
        client.on('client.disconnected', () => onState({ kind: 'offline', message: 'connection lost; reconnecting…', retryInMs: 0 }));
        client.on('client.reconnected', () => onState({ kind: 'connected', hello: client.hello!, client, deviceId: d.deviceId }));
        client.on('client.failed', (p) => {
          const e = p as { code: string; message: string; details?: Record<string, unknown> };
          client.close();
          running = false;
          onState(failure(e));
        });
        onState({ kind: 'connected', hello, client, deviceId: d.deviceId });
        return;
      } catch (err) {
        client.close();
        const e = err as CarapaceError;
        if (e.code === 'PAIRING_REQUIRED') {
          const det = e.details ?? {};
          onState({ kind: 'pairing', code: String(det.code), expiresAt: Number(det.expiresAt), deviceId: d.deviceId, inviteRejected: invite !== null && det.pairingCode === 'invalid' });
          invite = null;
          await sleep(PAIRING_POLL_MS);
          continue;
        }
        if (e.code === 'FORBIDDEN' && typeof e.details?.missingScope === 'string' && scopes.length > 1) {
          // Paired with fewer scopes than a Control UI asks for: ask for what was granted.
          scopes = scopes.filter((s) => s !== e.details!.missingScope);
          continue;
        }
        if (e.code === 'RATE_LIMITED') {
          const wait = Math.min(5 * 60_000, Number(e.details?.retryAfterMs ?? 30_000));
          onState({ kind: 'offline', message: 'too many failed attempts from this address; waiting', retryInMs: wait });
          await sleep(wait);
          continue;
        }
        if (e.code === 'UNAVAILABLE' || e.code === 'INTERNAL') {
          const wait = Math.min(10_000, 500 * 2 ** offlineAttempt++);
          onState({ kind: 'offline', message: `cannot reach the gateway (${e.message})`, retryInMs: wait });
          await sleep(wait);
          continue;
        }
        running = false;
        onState(failure(e));
        return;
      }
    }
  }

  return {
    start,
    retry() {
      wake?.();
    },
    async reset() {
      await forgetDevice();
    },
  };
}

function failure(e: { code: string; message: string; details?: Record<string, unknown> }): ConnState {
  const reason = e.details?.reason;
  if (e.code === 'UNAUTHORIZED' && reason === 'revoked') return { kind: 'failed', reason: 'revoked', message: 'This browser was revoked by the owner.' };
  if (e.code === 'UNAUTHORIZED' && (reason === 'gateway-key' || reason === 'gateway-signature')) {
    return { kind: 'failed', reason: 'gateway-key', message: 'The gateway at this address is not the one this browser paired with (its key changed). If you reset the gateway on purpose, forget it here and pair again.' };
  }
  if (e.code === 'FORBIDDEN') return { kind: 'failed', reason: 'forbidden', message: e.message };
  return { kind: 'failed', reason: 'other', message: `${e.code}: ${e.message}` };
}
