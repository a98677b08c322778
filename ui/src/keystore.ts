// IndexedDB keeps this browser's device: its non-extractable key (a CryptoKey is
// stored as is, never as bytes), the gateway key pinned on first pairing, and
// the scopes last granted. One record, one object store.
import type { DeviceKey } from './crypto.ts';
import type { GatewayPin } from '../../core/client/client.ts';

export interface StoredDevice extends DeviceKey {
  pin: GatewayPin | null;
  scopes: string[] | null;
}

const DB = 'carapace-ui';
const STORE = 'device';
const KEY = 'self';

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function tx<T>(mode: IDBTransactionMode, fn: (s: IDBObjectStore) => IDBRequest): Promise<T> {
  const db = await open();
  try {
    return await new Promise<T>((resolve, reject) => {
      const r = fn(db.transaction(STORE, mode).objectStore(STORE));
      r.onsuccess = () => resolve(r.result as T);
      r.onerror = () => reject(r.error);
    });
  } finally {
    db.close();
  }
}

export function loadDevice(): Promise<StoredDevice | undefined> {
  return tx<StoredDevice | undefined>('readonly', (s) => s.get(KEY));
}

export async function saveDevice(d: StoredDevice): Promise<void> {
  await tx('readwrite', (s) => s.put(d, KEY));
}

export async function forgetDevice(): Promise<void> {
  await tx('readwrite', (s) => s.delete(KEY));
}
