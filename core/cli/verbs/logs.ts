// `carapace logs`: the gateway's log (logs/carapace.log and its rotations, JSON
// lines), newest last; --follow then streams what the running gateway logs from
// now on (the bus's logs.tail). Readable with the gateway stopped, too.
import { existsSync, readFileSync } from 'node:fs';
import { UsageError } from '../../errors.ts';
import { formatPretty, logFiles, type LogRecord } from '../../log/logger.ts';
import { isValidSessionKey } from '../../sessions/session-key.ts';
import { requireGateway } from '../connect.ts';
import type { CliIO, Verb } from '../main.ts';

const USAGE = `usage: carapace logs [--follow] [--session KEY] [--lines N] [--json]

  (no option)     the last --lines records of the gateway's log (100 by default)
  --session KEY   only records about that session
  --follow        then stream new records from the running gateway until Ctrl-C
  --json          one JSON document: {records}; with --follow, one record per line`;

function readRecords(io: CliIO): LogRecord[] {
  const records: LogRecord[] = [];
  for (const file of logFiles(io.paths.logsDir)) {
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line) continue;
      try {
        records.push(JSON.parse(line) as LogRecord);
      } catch {
        // a line cut by a crash mid-write: skip it, keep the rest
      }
    }
  }
  return records;
}

export const verb: Verb = {
  usage: USAGE,
  options: { follow: { type: 'boolean' }, session: { type: 'string' }, lines: { type: 'string' } },
  async run(io, args) {
    if (args.positionals.length > 0) throw new UsageError(`unexpected argument "${args.positionals[0]}"`);
    const session = args.values.session as string | undefined;
    if (session !== undefined && !isValidSessionKey(session)) throw new UsageError(`--session ${session} is not a session key (agent:<id>:..., hook:<name>, cron:<id>)`);
    const lines = args.values.lines === undefined ? 100 : Number(args.values.lines);
    if (!Number.isInteger(lines) || lines < 1) throw new UsageError('--lines must be a whole number above 0');
    const wanted = (r: LogRecord) => session === undefined || r.sessionKey === session;

    const past = readRecords(io).filter(wanted).slice(-lines);
    if (!args.values.follow) {
      if (io.json) return io.emit({ records: past });
      if (past.length === 0) return io.say(`no log records${session ? ` for ${session}` : ''} in ${io.paths.logsDir}`);
      for (const r of past) io.say(formatPretty(r));
      return;
    }
    const print = (r: LogRecord) => io.stdout.write((io.json ? JSON.stringify(r) : formatPretty(r)) + '\n');
    for (const r of past) print(r);
    const client = await requireGateway(io.paths);
    try {
      client.on('log', (r) => {
        if (wanted(r as LogRecord)) print(r as LogRecord);
      });
      await client.request('logs.tail', { level: 'debug' });
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
        client.on('client.disconnected', () => resolve());
      });
    } finally {
      client.close();
    }
  },
};
