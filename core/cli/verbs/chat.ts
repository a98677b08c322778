import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import { CliError } from '../../errors.ts';
import { requireGateway, cliErrorOf } from '../connect.ts';
import type { BusClient } from '../../client/client.ts';
import type { CliIO, Verb } from '../main.ts';

interface AgentEventPayload {
  runId: string;
  sessionKey: string;
  stream: 'lifecycle' | 'assistant' | 'tool';
  data: { phase?: string; delta?: string; text?: string; status?: string; reason?: string; name?: string; isError?: boolean };
}

/** Send one message and stream the reply; resolves with the run's final status. */
async function turn(io: CliIO, client: BusClient, text: string, session: { key?: string; agent?: string }): Promise<{ status: string; sessionKey: string; text: string }> {
  let runId: string | null = null;
  const early: AgentEventPayload[] = [];
  let streamed = false;
  return new Promise((resolve, reject) => {
    const handle = (ev: AgentEventPayload) => {
      if (ev.stream === 'assistant' && typeof ev.data.delta === 'string') {
        streamed = true;
        if (!io.json) io.stdout.write(ev.data.delta);
      } else if (ev.stream === 'tool' && ev.data.phase === 'start' && !io.json) {
        io.stderr.write(`\n[tool ${ev.data.name}]\n`);
      } else if (ev.stream === 'lifecycle' && (ev.data.phase === 'end' || ev.data.phase === 'error')) {
        off();
        const final = ev.data.text ?? '';
        if (!io.json) io.stdout.write(streamed ? '\n' : `${final}\n`);
        resolve({ status: ev.data.status ?? ev.data.phase, sessionKey: ev.sessionKey, text: final });
      }
    };
    const off = client.on('agent', (payload) => {
      const ev = payload as AgentEventPayload;
      if (runId === null) early.push(ev);
      else if (ev.runId === runId) handle(ev);
    });
    client
      .request<{ runId: string; sessionKey: string }>('chat.send', {
        text,
        ...(session.key ? { sessionKey: session.key } : {}),
        ...(session.agent ? { agentId: session.agent } : {}),
        idempotencyKey: randomUUID(),
      })
      .then((res) => {
        runId = res.runId;
        session.key = res.sessionKey;
        for (const ev of early.splice(0)) if (ev.runId === runId) handle(ev);
      }, (err: unknown) => {
        off();
        reject(cliErrorOf(err));
      });
  });
}

export const verb: Verb = {
  usage: `usage: carapace chat [--session KEY] [--agent ID] [MESSAGE]

Sends MESSAGE to the agent through the running gateway and streams the reply.
Without MESSAGE, reads one message per line (a REPL on a terminal) until end of
input. --json prints {status, sessionKey, text} per message instead of streaming.`,
  options: { session: { type: 'string' }, agent: { type: 'string' } },
  async run(io, { positionals, values }) {
    const client = await requireGateway(io.paths);
    const session = { key: values.session as string | undefined, agent: values.agent as string | undefined };
    let failed = false;
    try {
      const once = async (text: string) => {
        const r = await turn(io, client, text, session);
        if (io.json) io.emit(r);
        if (r.status !== 'done') failed = true;
      };
      if (positionals.length > 0) {
        await once(positionals.join(' '));
      } else {
        const rl = createInterface({ input: io.stdin, terminal: false });
        if (io.stdin.isTTY) io.stderr.write('> ');
        for await (const line of rl) {
          if (line.trim()) await once(line);
          if (io.stdin.isTTY) io.stderr.write('> ');
        }
      }
    } finally {
      client.close();
    }
    if (failed) throw new CliError('the run did not finish normally (see the message above)');
    return 0;
  },
};
