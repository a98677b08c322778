import { randomUUID } from 'node:crypto';
import { CliError, UsageError } from '../../errors.ts';
import type { Verb } from '../main.ts';
import { connectGateway, withGateway, type ConnectGateway } from '../gateway-rpc.ts';

interface Job {
  id: string;
  name: string | null;
  kind: string;
  expr: string | null;
  tz: string | null;
  atMs: number | null;
  everyMs: number | null;
  message: string;
  deliver: string | null;
  nextRunAt: number | null;
  lastStatus: string | null;
}

const USAGE = `usage: carapace cron list | add (--cron EXPR [--tz ZONE] | --at TIME | --every DURATION) --message TEXT [options] | remove ID | run ID

  add options:
    --cron "0 7 * * 1-5"     five-field cron expression
    --tz Europe/Berlin       IANA time zone of --cron (default UTC)
    --at 2025-03-01T07:00:00+01:00   run once at this time
    --every 30m              run every DURATION (s, m, h, d; at least 1m)
    --message TEXT           what the agent is asked
    --deliver CHANNEL:CHAT   send the reply there, e.g. telegram:123456
    --session KEY            run in this session (default: the job's own)
    --agent ID               agent (default main)
    --name NAME              a label
    --missed run-once|skip   after downtime: run once on start (default) or skip`;

function when(j: Job): string {
  if (j.kind === 'cron') return `cron "${j.expr}" ${j.tz}`;
  if (j.kind === 'every') return `every ${Math.round((j.everyMs ?? 0) / 60_000)}m`;
  return `at ${new Date(j.atMs ?? 0).toISOString()}`;
}

export function makeCronVerb(connect: ConnectGateway): Verb {
  return {
    usage: USAGE,
    options: {
      cron: { type: 'string' },
      tz: { type: 'string' },
      at: { type: 'string' },
      every: { type: 'string' },
      message: { type: 'string' },
      deliver: { type: 'string' },
      session: { type: 'string' },
      agent: { type: 'string' },
      name: { type: 'string' },
      missed: { type: 'string' },
    },
    async run(io, args) {
      const [sub, id, ...extra] = args.positionals;
      const v = args.values as Record<string, string | undefined>;
      if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
      const call = (method: string, params: Record<string, unknown>) => withGateway(connect, io, (rpc) => rpc.call(method, params));
      switch (sub) {
        case 'list': {
          const res = (await call('cron.list', {})) as { jobs: Job[] };
          if (io.json) return io.emit(res);
          if (res.jobs.length === 0) return io.say('no cron jobs');
          for (const j of res.jobs) {
            const next = j.nextRunAt === null ? 'done' : new Date(j.nextRunAt).toISOString();
            io.say(`${j.id}  ${when(j)}  next ${next}${j.deliver ? `  → ${j.deliver}` : ''}${j.lastStatus ? `  last ${j.lastStatus}` : ''}  ${j.name ?? j.message.slice(0, 40)}`);
          }
          return;
        }
        case 'add': {
          if (id !== undefined) throw new UsageError(`unexpected argument "${id}"`);
          if (!v.message) throw new UsageError('add needs --message');
          const kinds = [v.cron, v.at, v.every].filter((x) => x !== undefined).length;
          if (kinds !== 1) throw new UsageError('add needs exactly one of --cron, --at, --every');
          if (v.missed !== undefined && v.missed !== 'run-once' && v.missed !== 'skip') throw new UsageError('--missed is run-once or skip');
          const params: Record<string, unknown> = { message: v.message, idempotencyKey: randomUUID() };
          for (const [flag, key] of [['cron', 'cron'], ['tz', 'tz'], ['at', 'at'], ['every', 'every'], ['deliver', 'deliver'], ['session', 'sessionKey'], ['agent', 'agentId'], ['name', 'name'], ['missed', 'missed']] as const) {
            if (v[flag] !== undefined) params[key] = v[flag];
          }
          const res = (await call('cron.add', params)) as { job: Job };
          if (io.json) return io.emit(res);
          io.say(`added ${res.job.id}: ${when(res.job)}, next ${res.job.nextRunAt === null ? '-' : new Date(res.job.nextRunAt).toISOString()}`);
          return;
        }
        case 'remove':
        case 'run': {
          if (!id) throw new UsageError(`${sub} needs the job ID (see carapace cron list)`);
          const res = (await call(`cron.${sub}`, { id, idempotencyKey: randomUUID() })) as { run?: { status: string; output: string | null; reason?: string | null } };
          if (io.json) io.emit(res);
          else io.say(sub === 'remove' ? `removed ${id}` : `ran ${id}: ${res.run?.status}${res.run?.output ? `\n${res.run.output}` : ''}`);
          if (res.run?.status === 'error') throw new CliError(`job ${id} failed${res.run.reason ? `: ${res.run.reason}` : ''}`);
          return;
        }
        default:
          throw new UsageError(sub === undefined ? 'missing subcommand' : `unknown subcommand "${sub}"`);
      }
    },
  };
}

export const verb: Verb = makeCronVerb(connectGateway);
