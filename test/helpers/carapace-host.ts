// A stand-in for what the plugin host gives a worker plugin: `carapace.net.webFetch`
// doing the kernel's secret substitution over real fetch, plus the plugin's config.
// Provider plugins under test run against loopback fakes through it.
import type { CapabilityApi } from '../../core/plugin-api.ts';

export type TestHost = Pick<CapabilityApi, 'net' | 'config'> & { fetches: { url: string; headers: Record<string, string> }[] };

const PLACEHOLDER = /\{\{secret:([A-Za-z_][A-Za-z0-9_]*)\}\}/g;

export function substituteSecrets(text: string, secrets: Record<string, string>): string {
  return text.replace(PLACEHOLDER, (_m, name: string) => {
    if (!(name in secrets)) throw new Error(`secret ${name} is not granted`);
    return secrets[name];
  });
}

export function testHost(config: Record<string, unknown>, secrets: Record<string, string> = {}): TestHost {
  const fetches: TestHost['fetches'] = [];
  const webFetch = async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const url = substituteSecrets(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url, secrets);
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((v, k) => (headers[k] = substituteSecrets(v, secrets)));
    fetches.push({ url, headers });
    return fetch(url, { ...init, headers });
  };
  return { net: { webFetch } as CapabilityApi['net'], config, fetches };
}

/** Install `globalThis.carapace` for code that reads it the way a worker plugin does. */
export function installCarapace(host: TestHost): () => void {
  const g = globalThis as { carapace?: unknown };
  const prev = g.carapace;
  g.carapace = host;
  return () => void (g.carapace = prev);
}
