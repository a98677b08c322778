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

interface PluginRow { id: string; kind?: string; state: string; restarts?: number; lastError?: string; refusal?: string }
interface LiveSections {
  plugins?: { plugins?: PluginRow[] };
  channels?: { list?: { id: string; state: string; lastError?: string }[]; queue?: { pending?: number; inFlight?: number; dead?: number }; pairingPending?: unknown[] };
  agent?: { running?: number; activeSessions?: number; sessions?: number; providers?: string[]; defaultModel?: string | null; hint?: string };
  approvals?: { pending?: number };
  scheduler?: { jobs?: number };
  [section: string]: unknown;
}

/** The live sections as a person reads them; a section this verb does not know is shown as JSON. */
function liveLines(live: LiveSections): string[] {
  const lines: string[] = [];
  const { plugins, channels, agent, approvals, scheduler, home: _home, gateway: _gateway, ...rest } = live;
  const rows = plugins?.plugins ?? [];
  if (plugins) {
    const byState = new Map<string, number>();
    for (const r of rows) byState.set(r.state, (byState.get(r.state) ?? 0) + 1);
    lines.push(`plugins: ${rows.length} (${[...byState].map(([state, n]) => `${n} ${state}`).join(', ') || 'none'}; a stopped plugin starts on first use)`);
    for (const r of rows.filter((r) => r.state === 'refused' || r.lastError)) lines.push(`  ${r.id}: ${r.state}${r.refusal ? ` (${r.refusal})` : ''}${r.lastError ? `, last error: ${r.lastError}` : ''}`);
  }
  if (agent) {
    lines.push(`sessions: ${agent.sessions ?? '?'} (${agent.activeSessions ?? 0} active, ${agent.running ?? 0} ${agent.running === 1 ? 'run' : 'runs'} in progress)`);
    lines.push(agent.hint ? `providers: none — ${agent.hint}` : `providers: ${(agent.providers ?? []).join(', ')}; default model ${agent.defaultModel ?? 'none'}`);
  }
  if (channels) {
    lines.push(`channels: ${(channels.list ?? []).map((c) => `${c.id} ${c.state}${c.lastError ? ` (last error: ${c.lastError})` : ''}`).join(', ') || 'none'}`);
    const q = channels.queue ?? {};
    lines.push(`outbound queue: ${q.pending ?? 0} pending, ${q.inFlight ?? 0} in flight, ${q.dead ?? 0} dead-lettered; senders waiting for pairing: ${channels.pairingPending?.length ?? 0}`);
  }
  if (approvals || scheduler) lines.push(`approvals pending: ${approvals?.pending ?? 0}; cron jobs: ${scheduler?.jobs ?? 0}`);
  for (const [name, section] of Object.entries(rest)) lines.push(`${name}: ${JSON.stringify(section)}`);
  return lines;
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
      for (const line of liveLines(status as LiveSections)) io.say(line);
      if (gateway.busError) io.say(`bus: ${gateway.busError}`);
    }
    else io.say(`gateway: not running${gateway.error ? ` — ${gateway.error}` : ''} (home ${io.home}); start it with: carapace start`);
    return 0;
  },
};
