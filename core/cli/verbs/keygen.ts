import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { CliError, UsageError } from '../../errors.ts';
import { b64, generateKeyPair, keyIdOf, writeKeyFile } from '../../identity/keys.ts';
import type { Verb } from '../main.ts';

export const verb: Verb = {
  usage: `usage: carapace keygen --out FILE [--force]

Create an ed25519 publisher key (the same JSON shape as identity files, mode
0600) for signing plugin manifests. Prints its keyId and public key; share the
public part with \`carapace trust add\` or register it with a registry. Refuses
to overwrite an existing FILE unless --force.`,
  options: { out: { type: 'string' }, force: { type: 'boolean' } },
  async run(io, { positionals, values }) {
    if (positionals.length > 0) throw new UsageError('keygen takes no positional arguments');
    if (typeof values.out !== 'string' || !values.out) throw new UsageError('--out FILE is required');
    const out = resolve(values.out);
    if (existsSync(out) && values.force !== true) throw new CliError(`${out} already exists; refusing to overwrite a key (use --force)`);
    const kp = generateKeyPair();
    writeKeyFile(out, kp);
    const info = { file: out, alg: 'ed25519', keyId: keyIdOf(kp.publicKey), publicKey: b64(kp.publicKey) };
    if (io.json) io.emit(info);
    else io.say(`wrote ${out}\nkeyId     ${info.keyId}\npublicKey ${info.publicKey}`);
    return 0;
  },
};
