import { controlUiBase } from '../../ui/base-url.ts';
import { readRunInfo } from '../../gateway/lock.ts';
import type { Verb } from '../main.ts';
import { connectOwner, gatewayTlsOptions } from '../connect.ts';
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';

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
  [more: string]: unknown;
}

/** GET /healthz (over https pinned to the gateway's certificate when it serves TLS). */
function healthz(url: string, tls: object | undefined): Promise<{ ok?: boolean; uptimeMs?: number }> {
  return new Promise((resolve, reject) => {
    const req = (tls ? httpsGet : httpGet)(url, { ...tls, timeout: 3000 }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d)).on('end', () => {
        try {
          resolve(res.statusCode === 200 ? JSON.parse(text) : { ok: false });
        } catch (err) {
          reject(err);
        }
      });
    });
    req.once('timeout', () => req.destroy(new Error('timed out')));
    req.once('error', reject);
  });
}

export const verb: Verb = {
  usage: `usage: carapace status [--json] [--home DIR]

Whether the gateway of this home is running, and what it is doing.`,
  async run(io) {
    const info = readRunInfo(io.paths);
    const gateway: GatewayStatus = { up: false };
    if (info) {
      const url = controlUiBase(info.host, info.port, info.tls !== undefined);
      Object.assign(gateway, { pid: info.pid, url, bind: info.bind, port: info.port, startedAt: info.startedAt, version: info.version });
      try {
        const body = await healthz(`${url}/healthz`, gatewayTlsOptions(info));
        gateway.up = body.ok === true;
        gateway.uptimeMs = body.uptimeMs;
      } catch (err) {
        gateway.error = `process ${info.pid} is running but ${url}/healthz did not answer (${(err as Error).message})`;
      }
    }
    const status: Record<string, unknown> = { home: io.home, gateway };
    if (gateway.up) {
      // The live picture (plugins, channels, sessions, queue…) comes from the bus `status` method.
      try {
        const client = await connectOwner(io.paths);
        if (client) {
          try {
            const live = await client.request<Record<string, unknown>>('status', {}, { timeoutMs: 5000 });
            const { gateway: liveGateway, ...sections } = live;
            Object.assign(gateway, liveGateway as Record<string, unknown>, { up: true });
            Object.assign(status, sections);
          } finally {
            client.close();
          }
        }
      } catch (err) {
        gateway.busError = (err as Error).message;
      }
    }
    if (io.json) io.emit(status);
    else if (gateway.up) {
      io.say(`gateway: up on ${gateway.url} (pid ${gateway.pid}, version ${gateway.version}, up ${Math.round((gateway.uptimeMs ?? 0) / 1000)} s)`);
      for (const [name, section] of Object.entries(status)) {
        if (name === 'home' || name === 'gateway') continue;
        io.say(`${name}: ${JSON.stringify(section)}`);
      }
      if (gateway.busError) io.say(`bus: ${gateway.busError}`);
    }
    else io.say(`gateway: not running${gateway.error ? ` — ${gateway.error}` : ''} (home ${io.home}); start it with: carapace start`);
    return 0;
  },
};
