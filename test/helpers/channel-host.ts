// The real plugin host (core/plugins/host.ts) on a temp home, wired to the real
// broker (core/bus/broker.ts) — no registry, no gateway — with the user's
// `channels` config and a fixed secrets map. For end-to-end channel plugin tests.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { tempHome } from './home.ts';
import { ensureHome, type HomePaths } from '../../core/home.ts';
import { openDb } from '../../core/store/db.ts';
import { createAuditLog, type AuditLog } from '../../core/audit.ts';
import { createLogHub, type LogRecord } from '../../core/log/logger.ts';
import { createBroker, type LocalBroker } from '../../core/bus/broker.ts';
import { systemClock } from '../../core/clock.ts';
import { PluginHost } from '../../core/plugins/host.ts';
import { installFolder } from '../../core/plugins/install.ts';
import { publicKeyFile } from '../../core/plugins/sign.ts';
import { mapSecrets } from '../../core/secrets/source.ts';
import type { KeyPair } from '../../core/identity/keys.ts';
import type { BusMessage } from '../../core/bus/types.ts';
import type { TestPlugin } from './plugins.ts';

export interface ChannelHost {
  host: PluginHost;
  broker: LocalBroker;
  audit: AuditLog;
  logs: LogRecord[];
  paths: HomePaths;
  /** Everything published on `channel.inbound`, in order. */
  inbound: BusMessage[];
  waitInbound(count: number, timeoutMs?: number): Promise<BusMessage[]>;
  waitFor(pred: () => boolean, what: string, timeoutMs?: number): Promise<void>;
}

export async function startChannelHost(
  t: { after(fn: () => unknown): void },
  opts: { channels: Record<string, Record<string, unknown>>; secrets: Record<string, string>; installed?: TestPlugin[]; trust?: KeyPair },
): Promise<ChannelHost> {
  const home = tempHome('chanhost');
  ensureHome(home.paths);
  const db = openDb(home.paths.db);
  const audit = createAuditLog(db);
  const hub = createLogHub({ stream: null, level: 'debug' });
  const logs: LogRecord[] = [];
  hub.listen((r) => logs.push(r));
  if (opts.trust) {
    const pub = publicKeyFile(opts.trust);
    writeFileSync(join(home.paths.trustDir, `${pub.keyId}.json`), JSON.stringify(pub));
  }
  for (const p of opts.installed ?? []) installFolder(home.paths, p.dir, {});
  const broker = createBroker({ log: hub.logger, clock: systemClock });
  const inbound: BusMessage[] = [];
  const kernel = broker.port('kernel:test', { publish: ['channel.outbound.>'], subscribe: ['channel.inbound'] });
  kernel.subscribe('channel.inbound', (m) => void inbound.push(m));
  const host = new PluginHost({
    paths: home.paths,
    log: hub.logger,
    audit,
    db,
    broker,
    secrets: mapSecrets(opts.secrets),
    pluginConfig: () => ({}),
    userConfig: () => ({ channels: opts.channels }),
    backoff: { baseMs: 50, maxMs: 500, circuitAfter: 20, windowMs: 60_000 },
  });
  host.discover();
  await host.start();
  t.after(async () => {
    await host.stop();
    kernel.close();
    broker.close();
    db.close();
    home.cleanup();
  });
  const waitFor = async (pred: () => boolean, what: string, timeoutMs = 15_000) => {
    const end = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; plugins: ${JSON.stringify(host.list().filter((p) => p.state !== 'stopped'))}`);
      await delay(10);
    }
  };
  return {
    host,
    broker,
    audit,
    logs,
    paths: home.paths,
    inbound,
    waitFor,
    async waitInbound(count, timeoutMs) {
      await waitFor(() => inbound.length >= count, `${count} message(s) on channel.inbound (have ${inbound.length})`, timeoutMs);
      return inbound.slice(0, count);
    },
  };
}
