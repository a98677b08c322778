import { existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { CarapaceError, CliError, UsageError } from '../../errors.ts';
import { readRunInfo } from '../../gateway/lock.ts';
import { openDb } from '../../store/db.ts';
import { createAuditLog } from '../../audit.ts';
import { systemClock } from '../../clock.ts';
import { secretValues } from '../../secrets/known.ts';
import { createPairingStore, type PairingRequest } from '../../channels/pairing.ts';
import { connectOwner } from '../connect.ts';
import type { CliIO, Verb } from '../main.ts';

// `carapace pairing list | approve CHANNEL CODE | reject CHANNEL CODE`.
// With the gateway running this goes over the bus as the owner device
// (pairing.* methods). With it stopped, the pairing store in carapace.db is
// used directly — the same module, the same transactions, the same audit entry.

/** What this verb needs from a bus connection to the gateway. */
export interface GatewayCaller {
  request(method: string, params: Record<string, unknown>): Promise<unknown>;
  close(): void | Promise<void>;
}

async function connectGateway(io: CliIO): Promise<GatewayCaller | null> {
  return connectOwner(io.paths);
}

interface Backend {
  list(channel?: string): Promise<PairingRequest[]>;
  resolve(action: 'approve' | 'reject', channel: string, code: string): Promise<PairingRequest>;
  close(): void | Promise<void>;
}

function offline(io: CliIO): Backend {
  if (!existsSync(io.paths.db)) {
    return {
      list: async () => [],
      resolve: async (_a, channel, code) => {
        throw new CliError(`no pending pairing request on ${channel} with code ${code}`);
      },
      close() {},
    };
  }
  const db = openDb(io.paths.db);
  const audit = createAuditLog(db, { secretValues });
  const store = createPairingStore(db, { clock: systemClock, audit });
  return {
    list: async (channel) => store.list(channel),
    resolve: async (action, channel, code) => (action === 'approve' ? store.approve(channel, code, 'cli:owner') : store.reject(channel, code, 'cli:owner')),
    close: () => {
      db.close();
    },
  };
}

function online(gw: GatewayCaller): Backend {
  return {
    list: async (channel) => ((await gw.request('pairing.list', channel ? { channel } : {})) as { requests: PairingRequest[] }).requests,
    resolve: async (action, channel, code) =>
      ((await gw.request(`pairing.${action}`, { channel, code, idempotencyKey: randomUUID() })) as { request: PairingRequest }).request,
    close: () => gw.close(),
  };
}

async function backend(io: CliIO): Promise<Backend> {
  if (readRunInfo(io.paths)) {
    const gw = await connectGateway(io);
    if (gw) return online(gw);
    io.stderr.write('carapace pairing: the gateway is running but this build has no bus client yet; using the store directly\n');
  }
  return offline(io);
}

function ago(ms: number): string {
  const min = Math.max(0, Math.round(ms / 60_000));
  return `${min} min`;
}

export const verb: Verb = {
  usage: `usage: carapace pairing list [CHANNEL] | approve CHANNEL CODE | reject CHANNEL CODE [--json] [--home DIR]

Chat senders waiting for DM access on channels with dmPolicy "pairing". An
unknown sender gets a code (XXXX-XXXX) once; approving it lets them talk to the
agent. Codes expire after an hour; at most 3 wait per channel.`,
  async run(io, args) {
    const [action, channel, code, ...extra] = args.positionals;
    if (extra.length) throw new UsageError(`unexpected argument: ${extra[0]}`);
    if (action !== 'list' && action !== 'approve' && action !== 'reject') throw new UsageError(action ? `unknown action: ${action}` : 'an action is required');
    if (action !== 'list' && (!channel || !code)) throw new UsageError(`${action} needs CHANNEL and CODE`);
    const b = await backend(io);
    try {
      if (action === 'list') {
        const requests = await b.list(channel);
        if (io.json) io.emit({ requests });
        else if (requests.length === 0) io.say('no pending pairing requests');
        else for (const r of requests) io.say(`${r.channel}  ${r.code}  ${r.senderName ? `${r.senderName} ` : ''}(${r.senderId})  expires in ${ago(r.expiresAt - Date.now())}`);
        return 0;
      }
      const r = await b.resolve(action, channel, code);
      if (io.json) io.emit({ [action === 'approve' ? 'approved' : 'rejected']: r });
      else io.say(`${action === 'approve' ? 'approved' : 'rejected'} ${r.senderName ?? r.senderId} (${r.senderId}) on ${r.channel}`);
      return 0;
    } catch (err) {
      if (err instanceof CarapaceError) throw new CliError(err.message);
      const wire = err as { code?: string; message?: string };
      if (wire && typeof wire.code === 'string' && typeof wire.message === 'string') throw new CliError(wire.message);
      throw err;
    } finally {
      await b.close();
    }
  },
};
