import { resolve } from 'node:path';
import { CliError, UsageError } from '../../errors.ts';
import { BackupError, createBackup, restoreBackup } from '../../ops/backup.ts';
import { LockError } from '../../gateway/lock.ts';
import { openDb } from '../../store/db.ts';
import { openAuditLog } from '../../audit.ts';
import type { Verb, CliIO, ParsedArgs } from '../main.ts';

const usage = `usage: carapace backup [--out FILE] [--json]
       carapace backup restore FILE [--force] [--json]   (also: carapace restore FILE)

backup writes one gzipped tar of the state directory: a consistent snapshot of
the database (taken safely while the gateway runs), config.json, identity/,
secrets.enc (still encrypted), trust/, plugins/, workspace/ and the signed audit
head; not logs/ or run/. The archive holds the device keys and the secrets key
file: keep it as private as the home itself (it is written with mode 0600).
Default FILE: ./carapace-backup-<UTC time>.tar.gz.

restore unpacks FILE into the home after checking it (no absolute paths, no "..",
no links; database integrity; audit chain). It refuses while a gateway runs on
the home, and over existing state unless --force.`;

function stamp(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\..*$/, 'Z');
}

export async function runRestore(io: CliIO, file: string | undefined, force: boolean): Promise<number> {
  if (!file) throw new UsageError('restore takes FILE');
  try {
    const res = await restoreBackup(resolve(file), io.home, { force });
    if (io.json) io.emit({ restored: true, ...res });
    else io.say(`restored ${res.entries} entries into ${res.home} (backup of ${new Date(res.manifest.createdAt).toISOString()}; audit log verified, ${res.auditRows} rows)`);
    return 0;
  } catch (err) {
    if (err instanceof BackupError || err instanceof LockError) throw new CliError(err.message);
    throw err;
  }
}

export const verb: Verb = {
  usage,
  options: { out: { type: 'string' }, force: { type: 'boolean' } },
  async run(io, { positionals, values }: ParsedArgs) {
    const [sub, arg, ...rest] = positionals;
    if (sub === 'restore') {
      if (rest.length) throw new UsageError('too many arguments');
      return runRestore(io, arg, values.force === true);
    }
    if (sub !== undefined) throw new UsageError(`unknown sub-verb "${sub}"`);
    const now = Date.now();
    const out = resolve((values.out as string | undefined) ?? `carapace-backup-${stamp(now)}.tar.gz`);
    let res;
    try {
      res = await createBackup(io.paths, out, now);
    } catch (err) {
      if (err instanceof BackupError) throw new CliError(err.message);
      throw err;
    }
    // Taking every key and secret out of the home is a privileged act: on the record.
    const db = openDb(io.paths.db);
    try {
      openAuditLog(db, io.paths).append({ actor: 'cli:owner', action: 'backup.create', target: out, data: { entries: res.entries, bytes: res.bytes } });
    } finally {
      db.close();
    }
    if (io.json) io.emit(res);
    else {
      io.say(`wrote ${out} (${res.entries} entries, ${res.bytes} bytes); it holds your keys: keep it private`);
      if (res.skipped.length) io.say(`skipped (not regular files): ${res.skipped.join(', ')}`);
    }
    return 0;
  },
};
