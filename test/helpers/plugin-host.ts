import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempHome } from './home.ts';
import { ensureHome } from '../../core/home.ts';
import { openDb } from '../../core/store/db.ts';
import { createAuditLog, type AuditLog } from '../../core/audit.ts';
import { createLogHub, type LogRecord } from '../../core/log/logger.ts';
import { PluginHost, type PluginHostDeps } from '../../core/plugins/host.ts';
import { installFolder } from '../../core/plugins/install.ts';
import { publicKeyFile } from '../../core/plugins/sign.ts';
import type { KeyPair } from '../../core/identity/keys.ts';
import type { TestPlugin } from './plugins.ts';
import type { HomePaths } from '../../core/home.ts';
import { setTimeout as delay } from 'node:timers/promises';

export interface HostFixture {
  host: PluginHost;
  paths: HomePaths;
  audit: AuditLog;
  logs: LogRecord[];
  waitFor(pred: () => boolean, what: string, timeoutMs?: number): Promise<void>;
}

/** A PluginHost on a temp home, with `plugins` installed (trusting `kp`), bundled plugins included. */
export async function startHost(
  t: { after(fn: () => unknown): void },
  plugins: TestPlugin[],
  kp: KeyPair | null,
  deps: Partial<PluginHostDeps> & { allowWorker?: boolean } = {},
): Promise<HostFixture> {
  const home = tempHome('plugins');
  ensureHome(home.paths);
  const db = openDb(home.paths.db);
  const audit = createAuditLog(db);
  const hub = createLogHub({ stream: null, level: 'debug' });
  const logs: LogRecord[] = [];
  hub.listen((r) => logs.push(r));
  if (kp) {
    const pub = publicKeyFile(kp);
    writeFileSync(join(home.paths.trustDir, `${pub.keyId}.json`), JSON.stringify(pub));
  }
  for (const p of plugins) installFolder(home.paths, p.dir, { allowWorker: deps.allowWorker });
  const host = new PluginHost({
    paths: home.paths,
    log: hub.logger,
    audit,
    db,
    pluginConfig: () => ({}),
    backoff: { baseMs: 20, maxMs: 200, circuitAfter: 50, windowMs: 60_000 },
    ...deps,
  });
  host.discover();
  await host.start();
  t.after(async () => {
    await host.stop();
    db.close();
    home.cleanup();
  });
  return {
    host,
    paths: home.paths,
    audit,
    logs,
    async waitFor(pred, what, timeoutMs = 10_000) {
      const end = Date.now() + timeoutMs;
      while (!pred()) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await delay(10);
      }
    },
  };
}

export function stateOf(host: PluginHost, id: string): string | undefined {
  return host.list().find((p) => p.id === id)?.state;
}
