import { UsageError } from '../../errors.ts';
import { runRestore } from './backup.ts';
import type { Verb } from '../main.ts';

export const verb: Verb = {
  usage: `usage: carapace restore FILE [--force] [--json]

The same as carapace backup restore FILE: unpack a backup into the home after
checking it; refused while a gateway runs on the home, and over existing state
unless --force.`,
  options: { force: { type: 'boolean' } },
  async run(io, { positionals, values }) {
    if (positionals.length > 1) throw new UsageError('too many arguments');
    return runRestore(io, positionals[0], values.force === true);
  },
};
