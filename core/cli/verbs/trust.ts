import { readFileSync } from 'node:fs';
import { CliError, UsageError } from '../../errors.ts';
import { ensureHome } from '../../home.ts';
import type { Verb, CliIO } from '../main.ts';

async function audit(io: CliIO, action: string, target: string): Promise<void> {
  const { openDb } = await import('../../store/db.ts');
  const { createAuditLog } = await import('../../audit.ts');
  const db = openDb(io.paths.db);
  try {
    createAuditLog(db).append({ actor: 'cli:owner', action, target });
  } finally {
    db.close();
  }
}

export const verb: Verb = {
  usage: `usage: carapace trust list
       carapace trust add KEYFILE
       carapace trust remove KEYID

Trusted publisher keys, one file each in $CARAPACE_HOME/trust/<keyId>.json.
\`add\` accepts a key file from \`carapace keygen\` or a public key file and
stores only the public part. The first-party key is always trusted and is not
listed here.`,
  async run(io, { positionals }) {
    const [sub, arg, ...rest] = positionals;
    const store = await import('../../trust/trust-store.ts');
    const dir = io.paths.trustDir;
    try {
      switch (sub) {
        case 'list': {
          if (arg !== undefined) throw new UsageError('list takes no arguments');
          const keys = store.listTrustedKeys(dir);
          if (io.json) io.emit({ keys });
          else if (keys.length === 0) io.say('no trusted publisher keys');
          else for (const k of keys) io.say(`${k.keyId}  ${k.publicKey}${k.problem ? `  (${k.problem})` : ''}`);
          return 0;
        }
        case 'add': {
          if (arg === undefined || rest.length > 0) throw new UsageError('add takes one KEYFILE');
          let text: string;
          try {
            text = readFileSync(arg, 'utf8');
          } catch {
            throw new CliError(`cannot read ${arg}`);
          }
          const key = store.publicPartOf(text, arg);
          ensureHome(io.paths);
          const { path, existed } = store.addTrustedKey(dir, key);
          await audit(io, 'trust.add', key.keyId);
          if (io.json) io.emit({ ...key, path, existed });
          else io.say(`${existed ? 'already trusted' : 'trusted'} ${key.keyId} (${path})`);
          return 0;
        }
        case 'remove': {
          if (arg === undefined || rest.length > 0) throw new UsageError('remove takes one KEYID');
          store.removeTrustedKey(dir, arg);
          await audit(io, 'trust.remove', arg);
          if (io.json) io.emit({ removed: arg });
          else io.say(`removed ${arg}`);
          return 0;
        }
        default:
          throw new UsageError(sub === undefined ? 'trust needs a sub-verb' : `unknown sub-verb "${sub}"`);
      }
    } catch (err) {
      if (err instanceof store.TrustError) throw new CliError(err.message);
      throw err;
    }
  },
};
