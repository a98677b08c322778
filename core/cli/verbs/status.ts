import { readRunInfo } from '../../gateway/lock.ts';
import type { Verb } from '../main.ts';

export interface GatewayStatus {
  up: boolean;
  pid?: number;
  url?: string;
  bind?: string;
  port?: number;
  startedAt?: number;
  uptimeMs?: number;
  version?: string;
  error?: string;
}

export const verb: Verb = {
  usage: `usage: carapace status [--json] [--home DIR]

Whether the gateway of this home is running, and what it is doing.`,
  async run(io) {
    const info = readRunInfo(io.paths);
    const gateway: GatewayStatus = { up: false };
    if (info) {
      const url = `http://${info.host.includes(':') ? `[${info.host}]` : info.host === '0.0.0.0' ? '127.0.0.1' : info.host}:${info.port}`;
      Object.assign(gateway, { pid: info.pid, url, bind: info.bind, port: info.port, startedAt: info.startedAt, version: info.version });
      try {
        const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(3000) });
        const body = (await res.json()) as { ok: boolean; uptimeMs: number };
        gateway.up = res.ok && body.ok;
        gateway.uptimeMs = body.uptimeMs;
      } catch (err) {
        gateway.error = `process ${info.pid} is running but ${url}/healthz did not answer (${(err as Error).message})`;
      }
    }
    const status = { home: io.home, gateway };
    if (io.json) io.emit(status);
    else if (gateway.up) io.say(`gateway: up on ${gateway.url} (pid ${gateway.pid}, version ${gateway.version}, up ${Math.round((gateway.uptimeMs ?? 0) / 1000)} s)`);
    else io.say(`gateway: not running${gateway.error ? ` — ${gateway.error}` : ''} (home ${io.home}); start it with: carapace start`);
    return 0;
  },
};
