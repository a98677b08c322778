import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CliError, UsageError } from '../../errors.ts';
import type { CliIO, Verb } from '../main.ts';

const usage = `usage: carapace plugin init KIND NAME [--dir DIR]
       carapace plugin pack [--dir DIR]
       carapace plugin sign --key FILE [--dir DIR]
       carapace plugin publish --registry URL --token TOKEN [--key FILE] [--dir DIR]
       carapace plugin key-id --key FILE

Plugin authoring. \`init\` scaffolds a TypeScript plugin project (KIND: tool,
provider, channel, memory) in NAME/ (or DIR): src/index.ts typed with
\`import type ... from 'carapace/plugin'\`, a plugin.json template and a
node:test test. \`pack\` builds dist/index.js (one script, no run-time imports)
and dist/plugin.json with its file digests and declared tools. \`sign\` signs
dist/plugin.json with a publisher key from \`carapace keygen\`. \`publish\`
uploads dist/ to a registry (token: --token or $CARAPACE_REGISTRY_TOKEN); with
--key it first registers that publisher key with the registry. DIR defaults to
the current folder. \`key-id\` prints the keyId of a key file (what users pass
to \`plugins install --trust\`).`;

const KINDS = ['tool', 'provider', 'channel', 'memory'] as const;

function projectDir(values: Record<string, unknown>): string {
  return resolve(typeof values.dir === 'string' ? values.dir : '.');
}

async function init(io: CliIO, kind: string | undefined, name: string | undefined, values: Record<string, unknown>): Promise<number> {
  if (!kind || !name) throw new UsageError('init needs KIND and NAME');
  if (!(KINDS as readonly string[]).includes(kind)) throw new UsageError(`KIND must be one of ${KINDS.join(', ')}, not "${kind}"`);
  const { scaffoldPlugin } = await import('../../plugins/scaffold.ts');
  const dir = resolve(typeof values.dir === 'string' ? values.dir : name);
  let r;
  try {
    r = scaffoldPlugin(kind as (typeof KINDS)[number], name, dir);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  if (io.json) io.emit(r);
  else io.say(`created ${kind} plugin ${name} in ${dir}\n${r.files.map((f) => `  ${f}`).join('\n')}\nnext: edit src/index.ts, run its test (npm test), then carapace plugin pack`);
  return 0;
}

async function pack(io: CliIO, values: Record<string, unknown>): Promise<number> {
  const { packPlugin, PackError } = await import('../../plugins/pack.ts');
  let r;
  try {
    r = packPlugin(projectDir(values));
  } catch (err) {
    if (err instanceof PackError) throw new CliError(err.message);
    throw err;
  }
  if (io.json) io.emit({ dist: r.dist, id: r.manifest.id, version: r.manifest.version, files: r.manifest.files, tools: r.tools, bytes: r.bytes });
  else io.say(`packed ${r.manifest.id} ${r.manifest.version} into ${r.dist} (${r.manifest.entry}, ${r.bytes} bytes${r.tools.length ? `; tools: ${r.tools.join(', ')}` : ''})\nnext: carapace plugin sign --key FILE`);
  return 0;
}

async function sign(io: CliIO, values: Record<string, unknown>): Promise<number> {
  if (typeof values.key !== 'string') throw new UsageError('sign needs --key FILE (a key from carapace keygen)');
  const { readKeyFile } = await import('../../identity/keys.ts');
  const { parseManifest } = await import('../../plugins/manifest.ts');
  const { computeFiles, signManifest } = await import('../../plugins/sign.ts');
  const dist = join(projectDir(values), 'dist');
  const path = join(dist, 'plugin.json');
  if (!existsSync(path)) throw new CliError(`${path} is missing; run carapace plugin pack first`);
  let kp;
  try {
    kp = readKeyFile(resolve(values.key));
  } catch (err) {
    throw new CliError(`cannot read the key ${values.key}: ${(err as Error).message}`);
  }
  let m;
  try {
    m = parseManifest(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  // Sign only what is on disk: a file edited after pack would otherwise ship under a stale digest.
  const actual = computeFiles(dist, ['plugin.json']);
  if (JSON.stringify(actual) !== JSON.stringify(Object.fromEntries(Object.entries(m.files).sort()))) {
    throw new CliError(`dist/ does not match the digests in dist/plugin.json (a file changed, was added or removed after pack); run carapace plugin pack again`);
  }
  const signed = signManifest(m, kp);
  writeFileSync(path, JSON.stringify(signed, null, 2) + '\n');
  if (io.json) io.emit({ id: signed.id, version: signed.version, keyId: signed.signature!.keyId, manifest: path });
  else io.say(`signed ${signed.id} ${signed.version} with key ${signed.signature!.keyId}\nnext: carapace plugin publish --registry URL --token TOKEN`);
  return 0;
}

async function publish(io: CliIO, values: Record<string, unknown>): Promise<number> {
  const registry = values.registry;
  if (typeof registry !== 'string') throw new UsageError('publish needs --registry URL');
  const token = typeof values.token === 'string' ? values.token : process.env.CARAPACE_REGISTRY_TOKEN;
  if (!token) throw new UsageError('publish needs --token TOKEN (or $CARAPACE_REGISTRY_TOKEN); mint one with carapace registry token --user NAME');
  const { parseManifest, loadTrustStore, verifyPlugin } = await import('../../plugins/manifest.ts');
  const { keyIdOf, readKeyFile } = await import('../../identity/keys.ts');
  const { publishRelease, registerPublisherKey, releaseTarball } = await import('../../registry/publish-client.ts');
  const dist = join(projectDir(values), 'dist');
  const path = join(dist, 'plugin.json');
  if (!existsSync(path)) throw new CliError(`${path} is missing; run carapace plugin pack and sign first`);
  const text = readFileSync(path, 'utf8');
  let m;
  try {
    m = parseManifest(text);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  if (!m.signature) throw new CliError(`dist/plugin.json is unsigned; run carapace plugin sign --key FILE first`);
  try {
    if (typeof values.key === 'string') {
      const kp = readKeyFile(resolve(values.key));
      if (keyIdOf(kp.publicKey) !== m.signature.keyId) throw new CliError(`dist/plugin.json is signed by ${m.signature.keyId}, not by the key in ${values.key}`);
      // Check locally what the registry will check, for a clearer error than a 4xx.
      const { store } = loadTrustStore(null);
      const trust = new Map(store);
      trust.set(m.signature.keyId, { keyId: m.signature.keyId, publicKey: kp.publicKey, firstParty: false, source: values.key });
      const { permissionList } = await import('../../plugins/permissions.ts');
      verifyPlugin(text, dist, { trust, source: 'installed', granted: permissionList(m.permissions, m.runtime ?? 'isolate'), allowWorker: true, ignoreFiles: ['plugin.json'] });
      const reg = await registerPublisherKey(registry, token, kp);
      io.say(`publisher key ${reg.keyId} registered to @${reg.user}`);
    }
    const r = await publishRelease(registry, token, releaseTarball(dist, m));
    if (io.json) io.emit(r);
    else io.say(`published ${r.name}@${r.version} (sha256 ${r.sha256}, key ${r.keyId})\ninstall it with: carapace plugins install ${r.name}@${r.version} --registry ${registry}`);
    return 0;
  } catch (err) {
    if (err instanceof CliError) throw err;
    const { PluginRefusedError } = await import('../../plugins/manifest.ts');
    if (err instanceof PluginRefusedError) throw new CliError(`refused (${err.reason}): ${err.message}`);
    throw new CliError(`publish failed: ${(err as Error).message}`);
  }
}

export const verb: Verb = {
  usage,
  options: {
    dir: { type: 'string' },
    key: { type: 'string' },
    registry: { type: 'string' },
    token: { type: 'string' },
  },
  async run(io, { positionals, values }) {
    const [sub, ...rest] = positionals;
    if (sub === 'init' && rest.length === 2) return init(io, rest[0], rest[1], values);
    if (sub === 'pack' && rest.length === 0) return pack(io, values);
    if (sub === 'sign' && rest.length === 0) return sign(io, values);
    if (sub === 'publish' && rest.length === 0) return publish(io, values);
    if (sub === 'key-id' && rest.length === 0) {
      if (typeof values.key !== 'string') throw new UsageError('key-id needs --key FILE');
      const { publicPartOf, TrustError } = await import('../../trust/trust-store.ts');
      try {
        const k = publicPartOf(readFileSync(resolve(values.key), 'utf8'), values.key);
        if (io.json) io.emit({ keyId: k.keyId, publicKey: k.publicKey });
        else io.stdout.write(k.keyId + '\n');
      } catch (err) {
        if (err instanceof TrustError || (err as NodeJS.ErrnoException).code === 'ENOENT') throw new CliError((err as Error).message);
        throw err;
      }
      return 0;
    }
    throw new UsageError(sub ? `unknown or malformed subcommand "${sub}"` : 'a subcommand is required: init, pack, sign or publish');
  },
};
