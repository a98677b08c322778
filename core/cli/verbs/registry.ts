import { networkInterfaces } from 'node:os';
import { join, resolve } from 'node:path';
import { CliError, UsageError } from '../../errors.ts';
import type { Verb, CliIO } from '../main.ts';

const DEFAULT_PORT = 18790;

const usage = `usage: carapace registry serve [--port N] [--bind loopback|lan|IP] [--data DIR]
       carapace registry token --user NAME [--data DIR] [--label TEXT]
       carapace registry yank NAME@VERSION --reason TEXT [--data DIR]

A ClawHub-compatible skill registry that also serves Carapace plugins with a
signed package index (fastify, its own SQLite file and blobs under DIR,
default $CARAPACE_HOME/registry-server). Loopback only unless --bind says
otherwise. \`token\` mints a publish token for NAME: printed once, stored hashed
(\`clawhub --registry URL login --token TOKEN\`). \`yank\` withdraws a skill or
plugin version (it stays downloadable by exact version, never becomes latest).`;

function dataDir(io: CliIO, value: unknown): string {
  return typeof value === 'string' ? resolve(value) : join(io.home, 'registry-server');
}

function bindAddress(bind: string | undefined): string {
  if (bind === undefined || bind === 'loopback') return '127.0.0.1';
  if (bind === 'lan') {
    for (const list of Object.values(networkInterfaces())) {
      for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
    }
    throw new CliError('no LAN address found; pass --bind IP');
  }
  return bind;
}

async function serve(io: CliIO, values: Record<string, unknown>): Promise<number> {
  let port = DEFAULT_PORT;
  if (values.port !== undefined) {
    port = Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be 0..65535, not "${String(values.port)}"`);
  }
  const bind = values.bind as string | undefined;
  if (bind !== undefined && !/^(loopback|lan|[0-9a-fA-F:.]+)$/.test(bind)) throw new UsageError('--bind must be loopback, lan or an IP address');
  const host = bindAddress(bind);
  const { createRegistryServer } = await import('../../registry/server.ts');
  const { manifestVerifier } = await import('../../registry/verifier.ts');
  const dir = dataDir(io, values.data);
  const server = await createRegistryServer({ dataDir: dir, verifier: manifestVerifier });
  let address: string;
  try {
    address = await server.app.listen({ port, host });
  } catch (err) {
    await server.close();
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new CliError(`port ${port} is already in use; pick another with --port`);
    throw err;
  }
  const url = address.replace('://[::1]', '://localhost');
  const { registryPublicKey } = await import('../../registry/signed-index.ts');
  const pub = registryPublicKey(server.key);
  // One line a script (or a test) can parse, on stdout, then quiet.
  if (io.json) io.emit({ url, dataDir: dir, registryKeyId: pub.keyId });
  else io.say(`registry listening on ${url} (data ${dir}, registry key ${pub.keyId})`);
  await new Promise<void>((done) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      server.close().then(done, done);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  return 0;
}

async function token(io: CliIO, values: Record<string, unknown>): Promise<number> {
  const user = values.user;
  if (typeof user !== 'string' || !/^[a-z0-9][a-z0-9-]{0,38}$/.test(user)) throw new UsageError('--user NAME is required (lowercase letters, digits, dashes)');
  const { openRegistryStore } = await import('../../registry/store.ts');
  const store = openRegistryStore(dataDir(io, values.data));
  try {
    const minted = store.mintToken(user, typeof values.label === 'string' ? values.label : undefined);
    if (io.json) io.emit({ user, token: minted });
    else {
      io.stdout.write(minted + '\n');
      io.stderr.write(`carapace registry: token for @${user} printed once; only its hash is stored\n`);
    }
  } finally {
    store.close();
  }
  return 0;
}

async function yank(io: CliIO, target: string | undefined, values: Record<string, unknown>): Promise<number> {
  const m = target ? /^(@?[a-z0-9][a-z0-9-/]*)@([^@]+)$/.exec(target) : null;
  if (!m) throw new UsageError('yank needs NAME@VERSION');
  const reason = values.reason;
  if (typeof reason !== 'string' || !reason.trim()) throw new UsageError('--reason TEXT is required: say why the version is withdrawn');
  const { openRegistryStore } = await import('../../registry/store.ts');
  const store = openRegistryStore(dataDir(io, values.data));
  try {
    const [, name, version] = m as unknown as [string, string, string];
    let kind: 'skill' | 'plugin';
    if (store.getSkillVersion(name, version)) {
      kind = 'skill';
      store.yankSkillVersion(name, version, reason.trim());
    } else if (store.getPluginVersion(name, version)) {
      kind = 'plugin';
      store.yankPluginVersion(name, version, reason.trim());
    } else throw new CliError(`no skill or plugin ${name}@${version} in this registry`);
    if (io.json) io.emit({ ok: true, kind, name, version, reason: reason.trim() });
    else io.say(`yanked ${kind} ${name}@${version}: ${reason.trim()}`);
  } finally {
    store.close();
  }
  return 0;
}

export const verb: Verb = {
  usage,
  options: {
    port: { type: 'string' },
    bind: { type: 'string' },
    data: { type: 'string' },
    user: { type: 'string' },
    label: { type: 'string' },
    reason: { type: 'string' },
  },
  async run(io, { positionals, values }) {
    const [sub, ...rest] = positionals;
    if (sub === 'serve' && rest.length === 0) return serve(io, values);
    if (sub === 'token' && rest.length === 0) return token(io, values);
    if (sub === 'yank' && rest.length === 1) return yank(io, rest[0], values);
    throw new UsageError(sub ? `unknown or malformed subcommand "${sub}"` : 'a subcommand is required');
  },
};
