// The browser's device key: WebCrypto Ed25519, generated non-extractable, so no
// script on the page (even an injected one) can read the private key out; it
// can only ask the browser to sign while the page is open. Ed25519 signatures
// are deterministic and identical to tweetnacl's, so the gateway cannot tell.
import type { Signer, Verifier } from '../../core/client/client.ts';

const enc = new TextEncoder();

export function b64(bytes: ArrayBuffer | Uint8Array): string {
  const u = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let s = '';
  for (const b of u) s += String.fromCharCode(b);
  return btoa(s);
}

export function unb64(text: string): Uint8Array<ArrayBuffer> {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

export async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return [...d].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** Why this browser cannot hold a device key, or null when it can. */
export function cryptoUnavailable(): string | null {
  if (!globalThis.isSecureContext || !globalThis.crypto?.subtle) {
    return 'This page is not a secure context (plain HTTP on an address other than localhost), so the browser offers no key store. Open it over an SSH tunnel to http://127.0.0.1, or configure TLS.';
  }
  if (!globalThis.indexedDB) return 'This browser has no IndexedDB (a private window?), so it cannot keep its device key.';
  return null;
}

export interface DeviceKey {
  privateKey: CryptoKey;
  publicKey: string;
  deviceId: string;
}

export async function generateDeviceKey(): Promise<DeviceKey> {
  const pair = (await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify'])) as CryptoKeyPair;
  const raw = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
  return { privateKey: pair.privateKey, publicKey: b64(raw), deviceId: await sha256Hex(raw) };
}

export function signerOf(key: DeviceKey): Signer {
  return {
    deviceId: key.deviceId,
    publicKey: key.publicKey,
    async sign(message) {
      return b64(await crypto.subtle.sign({ name: 'Ed25519' }, key.privateKey, enc.encode(message)));
    },
  };
}

export const webVerify: Verifier = async (message, signatureB64, publicKeyB64) => {
  try {
    const pk = await crypto.subtle.importKey('raw', unb64(publicKeyB64), { name: 'Ed25519' }, false, ['verify']);
    return await crypto.subtle.verify({ name: 'Ed25519' }, pk, unb64(signatureB64), enc.encode(message));
  } catch {
    return false;
  }
};
