// How CLI verbs reach a running gateway: find it through run/gateway.json and
// connect over the bus as the owner device (identity/owner.json), pinning the
// gateway key from identity/gateway.json — the CLI never trusts what the socket says.
import { readFileSync } from 'node:fs';
import { pinnedTls } from '../gateway/tls.ts';
import { controlUiBase } from '../ui/base-url.ts';
import { CliError } from '../errors.ts';
import { CarapaceError } from '../errors.ts';
import { readRunInfo, type RunInfo } from '../gateway/lock.ts';
import { readKeyFile } from '../identity/keys.ts';
import { OPERATOR_SCOPES } from '../bus/devices.ts';
import { nodeClient } from '../client/node.ts';
import { VERSION } from '../version.ts';
import type { BusClient } from '../client/client.ts';
import type { HomePaths } from '../home.ts';

export function gatewayWsUrl(info: RunInfo): string {
  return `${controlUiBase(info.host, info.port, info.tls !== undefined).replace(/^http/, 'ws')}/ws`;
}

/** What a client on this machine needs to reach the gateway: its TLS pin, when it serves TLS. */
export function gatewayTlsOptions(info: RunInfo): ReturnType<typeof pinnedTls> | undefined {
  return info.tls ? pinnedTls(info.tls.cert, info.tls.sha256) : undefined;
}

/** Connect as the owner, or null when no gateway runs on this home. */
export async function connectOwner(paths: HomePaths): Promise<BusClient | null> {
  const info = readRunInfo(paths);
  if (!info) return null;
  const owner = readKeyFile(paths.ownerKey);
  const gw = JSON.parse(readFileSync(paths.gatewayKey, 'utf8')) as { id: string; publicKey: string };
  const client = nodeClient({
    url: gatewayWsUrl(info),
    wsOptions: gatewayTlsOptions(info),
    key: owner,
    pin: { id: gw.id, publicKey: gw.publicKey },
    role: 'operator',
    scopes: [...OPERATOR_SCOPES],
    client: { name: 'carapace-cli', version: VERSION, platform: process.platform },
    reconnect: false,
    handshakeTimeoutMs: 10_000,
  });
  try {
    await client.connect();
  } catch (err) {
    client.close();
    throw new CliError(`cannot connect to the gateway (pid ${info.pid}, port ${info.port}): ${(err as Error).message}`);
  }
  return client;
}

/** Connect as the owner or fail with the one-line hint to start the gateway. */
export async function requireGateway(paths: HomePaths): Promise<BusClient> {
  const client = await connectOwner(paths);
  if (!client) throw new CliError(`the gateway is not running (home ${paths.root}); start it with: carapace start`);
  return client;
}

/** A bus error as a CLI failure: the gateway's message, which names the reason. */
export function cliErrorOf(err: unknown): unknown {
  if (err instanceof CarapaceError) return new CliError(err.message);
  return err;
}
