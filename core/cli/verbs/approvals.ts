import { randomUUID } from 'node:crypto';
import { UsageError } from '../../errors.ts';
import type { Verb } from '../main.ts';
import { connectGateway, withGateway, type ConnectGateway } from '../gateway-rpc.ts';

interface Row {
  id: string;
  tool: string;
  input: unknown;
  sessionKey: string;
  status: string;
  expiresAt: number;
}

const USAGE = `usage: carapace approvals list [--all] | approve ID | deny ID

  list          pending tool approvals (--all: decided ones too)
  approve ID    let the waiting tool call run
  deny ID       refuse it`;

export function makeApprovalsVerb(connect: ConnectGateway): Verb {
  return {
    usage: USAGE,
    options: { all: { type: 'boolean' } },
    async run(io, args) {
      const [sub, id, ...extra] = args.positionals;
      if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
      if (sub === 'list') {
        if (id !== undefined) throw new UsageError(`unexpected argument "${id}"`);
        const res = (await withGateway(connect, io, (rpc) =>
          rpc.call('approvals.list', { status: args.values.all ? 'all' : 'pending' }),
        )) as { approvals: Row[] };
        if (io.json) return io.emit(res);
        if (res.approvals.length === 0) return io.say('no pending approvals');
        for (const a of res.approvals) {
          const input = JSON.stringify(a.input);
          io.say(`${a.id}  ${a.status.padEnd(8)} ${a.tool}  ${input.length > 80 ? input.slice(0, 77) + '...' : input}  (${a.sessionKey}, expires ${new Date(a.expiresAt).toISOString()})`);
        }
        return;
      }
      if (sub === 'approve' || sub === 'deny') {
        if (!id) throw new UsageError(`${sub} needs the approval ID (see carapace approvals list)`);
        const res = (await withGateway(connect, io, (rpc) =>
          rpc.call('approvals.resolve', { id, decision: sub === 'approve' ? 'approved' : 'denied', idempotencyKey: randomUUID() }),
        )) as { approval: Row };
        if (io.json) return io.emit(res);
        io.say(`${id} ${res.approval.status}`);
        return;
      }
      throw new UsageError(sub === undefined ? 'missing subcommand' : `unknown subcommand "${sub}"`);
    },
  };
}

export const verb: Verb = makeApprovalsVerb(connectGateway);
