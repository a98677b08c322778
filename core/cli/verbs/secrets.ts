import { CliError, UsageError } from '../../errors.ts';
import { ensureHome } from '../../home.ts';
import { openSecrets, SecretsError, SECRET_NAME } from '../../secrets/store.ts';
import { openDb } from '../../store/db.ts';
import { openAuditLog } from '../../audit.ts';
import type { Verb, CliIO } from '../main.ts';

const usage = `usage: carapace secrets set NAME
       carapace secrets list [--json]
       carapace secrets remove NAME

set reads the value from standard input (typed without echo on a terminal, or
piped) — never from the command line, where it would land in shell history and
the process list. Values are encrypted at rest (nacl secretbox) and only names
are ever shown. Config refers to them as {"secret": "NAME"}.`;

/** Read a value from stdin: without echo on a TTY, to end of input otherwise. */
async function readValue(io: CliIO): Promise<string> {
  const stdin = io.stdin as NodeJS.ReadStream;
  if (stdin.isTTY) {
    io.stderr.write('value (not shown): ');
    stdin.setRawMode(true);
    const value = await new Promise<string>((resolve, reject) => {
      let buf = '';
      const onData = (chunk: Buffer) => {
        for (const ch of chunk.toString('utf8')) {
          if (ch === '\r' || ch === '\n') return done(buf);
          if (ch === '\u0003') return fail(new CliError('cancelled'));
          if (ch === '\u007f') buf = buf.slice(0, -1);
          else buf += ch;
        }
      };
      const cleanup = () => {
        stdin.off('data', onData);
        stdin.setRawMode(false);
        stdin.pause();
        io.stderr.write('\n');
      };
      const done = (v: string) => (cleanup(), resolve(v));
      const fail = (e: Error) => (cleanup(), reject(e));
      stdin.on('data', onData);
      stdin.resume();
    });
    return value;
  }
  let data = '';
  for await (const chunk of io.stdin) data += chunk;
  return data.replace(/\r?\n$/, '');
}

function audit(io: CliIO, action: string, name: string): void {
  const db = openDb(io.paths.db);
  try {
    openAuditLog(db, io.paths).append({ actor: 'cli:owner', action, target: `secret:${name}` });
  } finally {
    db.close();
  }
}

export const verb: Verb = {
  usage,
  async run(io, { positionals }) {
    const [sub, name, ...rest] = positionals;
    if (rest.length) throw new UsageError('too many arguments (the value is read from stdin)');
    try {
      switch (sub) {
        case 'set': {
          if (!name) throw new UsageError('secrets set takes NAME');
          if (!SECRET_NAME.test(name)) throw new CliError(`"${name}" is not a valid secret name (letters, digits, _; not starting with a digit)`);
          const value = await readValue(io);
          ensureHome(io.paths);
          openSecrets(io.paths).set(name, value);
          audit(io, 'secret.set', name);
          if (io.json) io.emit({ name, stored: true });
          else io.say(`stored ${name}`);
          return 0;
        }
        case 'list': {
          const names = openSecrets(io.paths).names();
          if (io.json) io.emit({ secrets: names });
          else io.say(names.length ? names.join('\n') : 'no secrets stored');
          return 0;
        }
        case 'remove': {
          if (!name) throw new UsageError('secrets remove takes NAME');
          if (!openSecrets(io.paths).remove(name)) throw new CliError(`no secret named ${name}`);
          audit(io, 'secret.remove', name);
          if (io.json) io.emit({ name, removed: true });
          else io.say(`removed ${name}`);
          return 0;
        }
        default:
          throw new UsageError(sub === undefined ? 'secrets needs a sub-verb' : `unknown sub-verb "${sub}"`);
      }
    } catch (err) {
      if (err instanceof SecretsError) throw new CliError(err.message);
      throw err;
    }
  },
};
