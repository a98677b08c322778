// `gateway.tls` (config.md): the gateway serves https and wss with this certificate
// and key, PEM files named by path (relative to the state directory). Unreadable or
// mismatched files stop the start with the reason: a gateway the user believes is
// encrypted must never come up in plain text.
import { readFileSync } from 'node:fs';
import { createSecureContext, rootCertificates } from 'node:tls';
import { resolve } from 'node:path';
import { ConfigError, type Config } from '../config/config.ts';

export interface TlsFiles {
  cert: string;
  key: string;
}

export function loadTls(config: Config, home: string): TlsFiles | null {
  const tls = config.gateway.tls;
  if (!tls) return null;
  const read = (what: 'cert' | 'key') => {
    try {
      return readFileSync(resolve(home, tls[what]), 'utf8');
    } catch (err) {
      throw new ConfigError(`/gateway/tls/${what}`, `cannot read ${tls[what]}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const files = { cert: read('cert'), key: read('key') };
  try {
    createSecureContext(files);
  } catch (err) {
    throw new ConfigError('/gateway/tls', `the certificate and key do not make a TLS context: ${(err as Error).message}`);
  }
  return files;
}

/**
 * How a client on this machine trusts the gateway's certificate: the configured one
 * (self-signed is fine) or a public one. The host name is not checked: the CLI
 * reaches the gateway by the address it binds, not by the name in its certificate,
 * and it pins the gateway's ed25519 key on top (protocol.md).
 */
export function localTlsTrust(cert: string): { ca: string[]; checkServerIdentity: () => undefined } {
  return { ca: [...rootCertificates, cert], checkServerIdentity: () => undefined };
}
