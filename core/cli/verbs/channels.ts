// `carapace channels status`: each channel plugin's state as the running gateway
// sees it (running, starting, backing off after failures, stopped, refused), its
// last error, and the delivery queue.
import { UsageError } from '../../errors.ts';
import type { Verb } from '../main.ts';
import { connectGateway, withGateway, type ConnectGateway } from '../gateway-rpc.ts';

interface PluginRow {
  id: string;
  kind?: string;
  state: string;
  restarts: number;
  lastError?: string;
  refusal?: string;
}

interface LiveStatus {
  plugins?: { plugins?: PluginRow[] };
  channels?: { queue?: Record<string, number>; pairingPending?: unknown[] };
}

const USAGE = `usage: carapace channels status [--json]

  status   each channel plugin's state and last error, and the outbound queue`;

export function makeChannelsVerb(connect: ConnectGateway): Verb {
  return {
    usage: USAGE,
    async run(io, args) {
      const [sub, ...extra] = args.positionals;
      if (sub !== 'status') throw new UsageError(sub === undefined ? 'missing subcommand' : `unknown subcommand "${sub}"`);
      if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
      const live = (await withGateway(connect, io, (rpc) => rpc.call('status', {}))) as LiveStatus;
      const channels = (live.plugins?.plugins ?? [])
        .filter((p) => p.kind === 'channel')
        .map((p) => ({ id: p.id, state: p.state, restarts: p.restarts, ...(p.lastError ? { lastError: p.lastError } : {}), ...(p.refusal ? { refusal: p.refusal } : {}) }));
      const result = { channels, queue: live.channels?.queue ?? {}, pairingPending: live.channels?.pairingPending?.length ?? 0 };
      if (io.json) return io.emit(result);
      if (channels.length === 0) io.say('no channel plugins (enable one with channels.<id>.enabled in config.json)');
      for (const c of channels) io.say(`${c.id.padEnd(12)} ${c.state}${c.restarts ? ` (restarted ${c.restarts}x)` : ''}${c.lastError ? `  last error: ${c.lastError}` : ''}`);
      io.say(`outbound queue: ${Object.entries(result.queue).map(([k, v]) => `${k} ${v}`).join(', ') || 'empty'}; senders waiting for pairing: ${result.pairingPending}`);
    },
  };
}

export const verb: Verb = makeChannelsVerb(connectGateway);
