import { randomUUID } from 'node:crypto';
import { UsageError } from '../../errors.ts';
import type { Verb } from '../main.ts';
import { connectGateway, withGateway, type ConnectGateway } from '../gateway-rpc.ts';

interface SessionRow {
  sessionKey: string;
  agentId: string;
  updatedAt: number;
  summary: string | null;
}

interface StoredMessage {
  message: { role: string; content: { type: string; text?: string; name?: string }[] };
  createdAt: number;
}

const USAGE = `usage: carapace sessions list [--limit N] | show KEY [--limit N] | reset KEY

  list        sessions, most recently active first
  show KEY    a session's transcript (the last --limit messages, 50 by default)
  reset KEY   start the session afresh: its next message begins a new context`;

function textOf(m: StoredMessage['message']): string {
  return m.content.map((p) => (p.type === 'text' ? p.text : p.type === 'tool_call' ? `[tool ${p.name}]` : `[${p.type}]`)).join(' ');
}

function limitOf(raw: unknown): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new UsageError('--limit must be a whole number from 1 to 1000');
  return n;
}

export function makeSessionsVerb(connect: ConnectGateway): Verb {
  return {
    usage: USAGE,
    options: { limit: { type: 'string' } },
    async run(io, args) {
      const [sub, key, ...extra] = args.positionals;
      if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
      const limit = limitOf(args.values.limit);
      if (sub === 'list') {
        if (key !== undefined) throw new UsageError(`unexpected argument "${key}"`);
        const res = (await withGateway(connect, io, (rpc) => rpc.call('sessions.list', limit ? { limit } : {}))) as { sessions: SessionRow[] };
        if (io.json) return io.emit(res);
        if (res.sessions.length === 0) return io.say('no sessions yet');
        for (const s of res.sessions) io.say(`${s.sessionKey}  (agent ${s.agentId}, active ${new Date(s.updatedAt).toISOString()})`);
        return;
      }
      if (sub === 'show' || sub === 'reset') {
        if (!key) throw new UsageError(`${sub} needs a session KEY (see carapace sessions list)`);
        if (sub === 'reset') {
          const res = (await withGateway(connect, io, (rpc) => rpc.call('sessions.reset', { sessionKey: key, idempotencyKey: randomUUID() }))) as { reset: boolean };
          if (io.json) return io.emit(res);
          return io.say(res.reset ? `${key} reset: its next message starts a fresh context` : `${key} has nothing to reset`);
        }
        const res = (await withGateway(connect, io, (rpc) => rpc.call('chat.history', { sessionKey: key, limit: limit ?? 50 }))) as { messages: StoredMessage[] };
        if (io.json) return io.emit(res);
        if (res.messages.length === 0) return io.say(`${key} has no messages`);
        for (const m of res.messages) io.say(`${new Date(m.createdAt).toISOString()}  ${m.message.role}: ${textOf(m.message)}`);
        return;
      }
      throw new UsageError(sub === undefined ? 'missing subcommand' : `unknown subcommand "${sub}"`);
    },
  };
}

export const verb: Verb = makeSessionsVerb(connectGateway);
