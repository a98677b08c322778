// `gateway.tls` (config.md): the gateway serves https and wss with this certificate
// and key, PEM files named by path (relative to the state directory). Unreadable or
// mismatched files stop the start with the reason: a gateway the user believes is
// encrypted must never come up in plain text. What it loaded (the certificate's
// path and SHA-256 fingerprint) goes into run/gateway.json, and clients on this
// machine pin exactly that certificate. A renewed certificate takes effect without
// a restart (watchTlsFiles; gateway.ts).
import { readFileSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { createSecureContext, rootCertificates, type PeerCertificate } from 'node:tls';
import { resolve } from 'node:path';
import { ConfigError, type Config } from '../config/config.ts';

export interface LoadedTls {
  cert: string;
  key: string;
  /** Where the certificate and the key were read from, absolute. */
  certPath: string;
  keyPath: string;
  /** Its leaf certificate's SHA-256 fingerprint (colon-separated hex, as Node prints it). */
  sha256: string;
}

export function loadTls(config: Config, home: string): LoadedTls | null {
  const tls = config.gateway.tls;
  if (!tls) return null;
  const certPath = resolve(home, tls.cert);
  const keyPath = resolve(home, tls.key);
  const read = (what: 'cert' | 'key', path: string) => {
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw new ConfigError(`/gateway/tls/${what}`, `cannot read ${tls[what]}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const files = { cert: read('cert', certPath), key: read('key', keyPath) };
  try {
    createSecureContext(files);
    return { ...files, certPath, keyPath, sha256: new X509Certificate(files.cert).fingerprint256 };
  } catch (err) {
    throw new ConfigError('/gateway/tls', `the certificate and key do not make a TLS context: ${(err as Error).message}`);
  }
}

/**
 * Calls `changed` when the certificate or the key file is replaced or rewritten.
 * Polled with stat, which follows symlinks: certbot and acme.sh renew by pointing
 * the same names at new files, and inotify on a name would miss that.
 */
export function watchTlsFiles(tls: LoadedTls, pollMs: number, changed: () => void): () => void {
  const files = [tls.certPath, tls.keyPath];
  const listener = (now: Stats, before: Stats) => {
    if (now.mtimeMs !== before.mtimeMs || now.ino !== before.ino || now.size !== before.size) changed();
  };
  for (const file of files) watchFile(file, { interval: pollMs, persistent: false }, listener);
  return () => {
    for (const file of files) unwatchFile(file, listener);
  };
}

/**
 * How a client on this machine trusts the gateway: the certificate run/gateway.json
 * says it serves and no other (self-signed is fine; a public one chains to the
 * system roots).
 * The host name is not what is checked: the CLI reaches the gateway by the address
 * it binds, not by the name in its certificate.
 */
export function pinnedTls(certPath: string, sha256: string): { ca: string[]; checkServerIdentity: (host: string, peer: PeerCertificate) => Error | undefined } {
  return {
    ca: [...rootCertificates, readFileSync(certPath, 'utf8')],
    checkServerIdentity: (_host, peer) => (peer.fingerprint256 === sha256 ? undefined : new Error(`the gateway presented certificate ${peer.fingerprint256}, not the one run/gateway.json names (${sha256})`)),
  };
}
