// Node wiring for the bus client: tweetnacl sign/verify over key files, and the
// `ws` package (which, unlike a browser, can send an Origin header or none).
import WebSocket from 'ws';
import { fromB64, sign, verify, type KeyPair } from '../identity/keys.ts';
import { BusClient, type ClientOptions, type Signer, type Verifier, type WebSocketCtor } from './client.ts';

export function keySigner(kp: KeyPair): Signer {
  return { deviceId: kp.id, publicKey: kp.publicKeyB64, sign: (message) => sign(message, kp) };
}

export const nodeVerify: Verifier = (message, signatureB64, publicKeyB64) => {
  const pk = fromB64(publicKeyB64, 32);
  return pk !== null && verify(message, signatureB64, pk);
};

export type NodeClientOptions = Omit<ClientOptions, 'signer' | 'verify'> & { key: KeyPair };

export function nodeClient(opts: NodeClientOptions): BusClient {
  const { key, ...rest } = opts;
  return new BusClient({ WebSocket: WebSocket as unknown as WebSocketCtor, ...rest, signer: keySigner(key), verify: nodeVerify });
}
