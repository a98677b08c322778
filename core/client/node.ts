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

type CorkableSocket = { cork(): void; uncork(): void; destroyed: boolean };

/**
 * ws writes every frame with its own syscall. A client that sends a burst (a
 * publisher with requests in flight) holds its frames until the end of the
 * event-loop turn and writes them in one writev; nothing waits longer than that.
 */
class CorkingWebSocket extends WebSocket {
  #corked = false;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  override send(data: any, options?: any, cb?: any): void {
    const s = (this as unknown as { _socket?: CorkableSocket })._socket;
    if (!this.#corked && s && this.readyState === WebSocket.OPEN) {
      s.cork();
      this.#corked = true;
      setImmediate(() => {
        this.#corked = false;
        if (!s.destroyed) s.uncork();
      });
    }
    super.send(data, options, cb);
  }
}

export type NodeClientOptions = Omit<ClientOptions, 'signer' | 'verify'> & { key: KeyPair };

export function nodeClient(opts: NodeClientOptions): BusClient {
  const { key, ...rest } = opts;
  return new BusClient({ WebSocket: CorkingWebSocket as unknown as WebSocketCtor, ...rest, signer: keySigner(key), verify: nodeVerify });
}
