import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CliError, UsageError } from '../../errors.ts';
import type { Verb } from '../main.ts';
import { ensureHome } from '../../home.ts';
import { openDb } from '../../store/db.ts';
import { createAuditLog } from '../../audit.ts';
import { secretValues } from '../../secrets/known.ts';
import { verifyOnDisk } from '../../plugins/installed.ts';
import { PluginRefusedError } from '../../plugins/manifest.ts';
import { grantPermission, inspectFolder, installFolder, InstallRefused, openLocalSource, removePlugin } from '../../plugins/install.ts';

type IO = Parameters<Verb['run']>[0];

// Not a path on disk and shaped like a package name: the user meant a registry.
function parseRegistrySpecLoose(spec: string): boolean {
  return /^(@[a-z0-9][a-z0-9-]*\/)?[a-z0-9][a-z0-9-]*(@[0-9A-Za-z.+-]+)?$/.test(spec);
}

/** A yes/no question on a terminal; null when nobody is there to answer (flags decide). */
function confirmer(io: IO): ((q: string) => Promise<boolean>) | undefined {
  if (!io.stdin.isTTY || io.json) return undefined;
  return async (question) => {
    const { createInterface } = await import('node:readline/promises');
    const rl = createInterface({ input: io.stdin, output: io.stderr });
    try {
      return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
    } finally {
      rl.close();
    }
  };
}

/** Tell a running gateway to load what changed on disk; null when none runs or it cannot. */
async function reloadGateway(io: IO): Promise<string> {
  const { connectOwner } = await import('../connect.ts');
  let client;
  try {
    client = await connectOwner(io.paths);
  } catch (err) {
    return `the gateway did not answer (${(err as Error).message}); restart it to load the change`;
  }
  if (!client) return 'no gateway running; it picks the change up on its next start';
  try {
    const r = await client.request<{ added: string[]; replaced: string[]; removed: string[] }>('plugins.reload', {});
    return `the running gateway reloaded its plugins (added: ${r.added.join(', ') || '-'}; replaced: ${r.replaced.join(', ') || '-'}; removed: ${r.removed.join(', ') || '-'})`;
  } catch (err) {
    return `the gateway could not reload (${(err as Error).message}); restart it to load the change`;
  } finally {
    client.close();
  }
}

async function installRemote(io: IO, spec: string, values: Record<string, unknown>): Promise<number> {
  const { installFromRegistry, rollbackPlugin, parseRegistrySpec } = await import('../../plugins/install-registry.ts');
  const parsed = parseRegistrySpec(spec);
  if (!parsed) throw new UsageError(`"${spec}" is not a plugin name[@version]`);
  // Carapace's registry speaks its own signed index; ClawHub (the skills default) does not serve one.
  const registry = (values.registry as string | undefined) ?? (process.env.CARAPACE_REGISTRY || undefined);
  const target = parsed.version ? `${parsed.name}@${parsed.version}` : parsed.name;
  const refuse = (err: unknown): never => {
    if (!(err instanceof InstallRefused)) throw err;
    withAudit(io, (audit) => audit.append({ actor: 'cli', action: 'plugin.install.refused', target: parsed.name, data: { reason: err.reason, message: err.message, registry: registry ?? null, spec } }));
    if (io.json) io.emit({ id: parsed.name, installed: false, reason: err.reason, error: err.message, ...err.details });
    throw new CliError(`refused (${err.reason}): ${err.message}`);
  };
  if (values.rollback === true) {
    let r;
    try {
      r = withAudit(io, (audit) => {
        const out = rollbackPlugin(io.paths, parsed.name);
        audit.append({ actor: 'cli', action: 'plugin.rollback', target: parsed.name, data: { version: out.version, replaced: out.replaced } });
        return out;
      });
    } catch (err) {
      return refuse(err);
    }
    const gateway = await reloadGateway(io);
    if (io.json) io.emit({ ...r, rolledBack: true });
    else io.say(`rolled back ${r.id} to ${r.version} (from ${r.replaced}); ${gateway}`);
    return 0;
  }
  if (!registry) throw new UsageError('installing by name needs a registry: --registry URL, or CARAPACE_REGISTRY in the environment (or give a plugin folder)');
  try {
    new URL(registry);
  } catch {
    throw new UsageError(`the registry must be a URL, not "${registry}"`);
  }
  let r;
  try {
    r = await installFromRegistry(io.paths, {
      registry,
      name: parsed.name,
      version: parsed.version,
      trustKeyId: values.trust as string | undefined,
      yes: values.yes === true,
      allowDowngrade: values['allow-downgrade'] === true,
      allowWorker: values['allow-worker'] === true,
      confirm: confirmer(io),
      say: (line) => (io.json ? undefined : io.stderr.write(line + '\n')),
    });
  } catch (err) {
    return refuse(err);
  }
  if (r.unchanged) {
    if (io.json) io.emit({ ...r, installed: true });
    else io.say(`${target}: ${r.version} is already installed`);
    return 0;
  }
  withAudit(io, (audit) =>
    audit.append({ actor: 'cli', action: 'plugin.install', target: r.id, data: { version: r.version, previous: r.previousVersion, granted: r.granted, added: r.added, keyId: r.keyId, registry, registryKeyId: r.registryKeyId, newlyTrusted: r.newlyTrusted } }),
  );
  const gateway = await reloadGateway(io);
  if (io.json) io.emit({ ...r, installed: true, gateway });
  else io.say(`installed ${r.id} ${r.version}${r.previousVersion ? ` (was ${r.previousVersion}; --rollback returns to it)` : ''}; ${gateway}`);
  return 0;
}

/** A plugin folder or a .tgz of one, from this machine. */
async function installLocal(io: IO, source: string, opts: { allowWorker: boolean; allowDowngrade: boolean; yes: boolean }): Promise<number> {
  const refused = (reason: string, message: string): never => {
    withAudit(io, (audit) => audit.append({ actor: 'cli', action: 'plugin.install.refused', target: source, data: { reason, message } }));
    if (io.json) io.emit({ source, installed: false, reason, error: message });
    throw new CliError(`refused (${reason}): ${message}`);
  };
  let local;
  try {
    local = openLocalSource(io.paths, source);
  } catch (err) {
    if (err instanceof InstallRefused) refused(err.reason, err.message);
    throw err;
  }
  const { dir } = local;
  try {
    let inspected;
    try {
      inspected = inspectFolder(io.paths, dir, opts);
    } catch (err) {
      if (err instanceof PluginRefusedError) refused(err.reason, err.message);
      throw err;
    }
    const m = inspected.verified.manifest;
    const lines = [
      `${m.id} ${m.version} (${m.kind}, runtime ${m.runtime ?? 'isolate'}) signed by ${inspected.verified.key.keyId}${inspected.previous ? `, replacing ${inspected.previous.version}` : ''}`,
      'requests:',
      ...(inspected.requested.length ? inspected.requested.map((p) => `  ${p}`) : ['  (no permissions)']),
    ];
    if ((m.runtime ?? 'isolate') === 'worker') lines.push('WARNING: the worker runtime runs full Node.js in a thread of the gateway: it can reach whatever the gateway process can (files, network, memory).');
    if (!opts.yes) {
      if (io.json) io.emit({ id: m.id, version: m.version, requested: inspected.requested, installed: false });
      else io.say(lines.join('\n'));
      throw new CliError(`${m.id} not installed: re-run with --yes to accept ${inspected.requested.length ? 'these permissions' : 'it'}`);
    }
    const record = withAudit(io, (audit) => {
      const rec = installFolder(io.paths, dir, opts, inspected);
      audit.append({ actor: 'cli', action: 'plugin.install', target: m.id, data: { version: m.version, previous: inspected.previous?.version ?? null, granted: rec.granted, keyId: inspected.verified.key.keyId, digest: inspected.verified.digest, source } });
      return rec;
    });
    const gateway = await reloadGateway(io);
    if (io.json) io.emit({ id: m.id, version: m.version, granted: record.granted, installed: true, gateway });
    else io.say([...lines, `installed ${m.id} ${m.version}; ${gateway}`].join('\n'));
    return 0;
  } finally {
    local.close();
  }
}

function withAudit<T>(io: Parameters<Verb['run']>[0], fn: (audit: ReturnType<typeof createAuditLog>) => T): T {
  ensureHome(io.paths);
  const db = openDb(io.paths.db);
  try {
    return fn(createAuditLog(db, { secretValues }));
  } finally {
    db.close();
  }
}

interface Row {
  id: string;
  source: string;
  version?: string;
  kind?: string;
  runtime?: string;
  ok: boolean;
  refusal?: string;
  error?: string;
  permissions?: string[];
}

function verifyAll(io: IO): Row[] {
  return verifyOnDisk(io.paths).map(({ loc, verified: v, error }) => {
    if (v) return { id: loc.id, source: loc.source, version: v.manifest.version, kind: v.manifest.kind, runtime: v.manifest.runtime ?? 'isolate', ok: true, permissions: v.granted };
    if (error instanceof PluginRefusedError) return { id: loc.id, source: loc.source, ok: false, refusal: error.reason, error: error.message };
    return { id: loc.id, source: loc.source, ok: false, refusal: 'unreadable', error: error!.message };
  });
}

export const verb: Verb = {
  usage: `usage: carapace plugins list | install DIR|FILE.tgz|NAME[@VER] [--registry URL] [--trust KEYID] [--yes] [--allow-worker] [--allow-downgrade] [--rollback] | remove ID | verify [ID] | grant ID PERM

  list              bundled and installed plugins, verified, with their permissions
  install DIR|FILE.tgz
                    verify a local plugin folder (plugin.json + files) or archive, show what it
                    asks for; --yes installs (the version it replaces is kept for --rollback)
  install NAME[@VER] [--registry URL]
                    from a registry (--registry, else $CARAPACE_REGISTRY): signed index (registry key pinned on first use), sha256,
                    publisher signature (--trust KEYID on first use), file digests; shows the
                    permissions (the new ones on an update) and installs on --yes; the previous
                    version is kept: install NAME --rollback returns to it
  remove ID         uninstall a plugin
  verify [ID]       re-check signatures and file hashes (exit 1 if any fails)
  grant ID PERM     add a permission: net:HOST:PORT secret:NAME@HOST fs.read:ROOT fs.write:ROOT env:NAME
                    bus.publish:PATTERN bus.subscribe:PATTERN exec worker
SPEC for install: a plugin folder, a .tgz of one (\`carapace plugin pack\`'s dist/
or a registry release), or a registry name. After an install, rollback, remove or
grant, a running gateway reloads its installed plugins (plugins.reload).`,
  options: {
    yes: { type: 'boolean', short: 'y' },
    registry: { type: 'string' },
    trust: { type: 'string' },
    rollback: { type: 'boolean' },
    'allow-worker': { type: 'boolean' },
    'allow-downgrade': { type: 'boolean' },
  },
  async run(io, args) {
    const [sub, ...rest] = args.positionals;
    switch (sub) {
      case 'list': {
        const rows = verifyAll(io);
        if (io.json) io.emit({ plugins: rows });
        else for (const r of rows) io.say(r.ok ? `${r.id}  ${r.version}  ${r.kind}/${r.runtime}  ${r.source}  ${r.permissions!.join(' ') || '(no permissions)'}` : `${r.id}  REFUSED (${r.refusal}): ${r.error}`);
        return 0;
      }
      case 'verify': {
        const rows = verifyAll(io).filter((r) => rest[0] === undefined || r.id === rest[0]);
        if (rest[0] !== undefined && rows.length === 0) throw new CliError(`no plugin ${rest[0]}`);
        if (io.json) io.emit({ plugins: rows });
        else for (const r of rows) io.say(r.ok ? `ok  ${r.id} ${r.version}` : `FAIL  ${r.id}: ${r.error}`);
        const failed = rows.filter((r) => !r.ok).map((r) => r.id);
        if (failed.length) throw new CliError(`${failed.join(', ')} failed verification: reinstall from a trusted source, or remove`);
        return 0;
      }
      case 'install': {
        if (!rest[0]) throw new UsageError('install needs a plugin folder or a registry name');
        if (args.values.registry !== undefined || args.values.rollback === true || (!existsSync(rest[0]) && parseRegistrySpecLoose(rest[0]))) return installRemote(io, rest[0], args.values);
        return installLocal(io, resolve(rest[0]), { allowWorker: args.values['allow-worker'] === true, allowDowngrade: args.values['allow-downgrade'] === true, yes: args.values.yes === true });
      }
      case 'remove': {
        if (!rest[0]) throw new UsageError('remove needs a plugin id');
        const removed = withAudit(io, (audit) => {
          const ok = removePlugin(io.paths, rest[0]);
          if (ok) audit.append({ actor: 'cli', action: 'plugin.remove', target: rest[0] });
          return ok;
        });
        if (!removed) throw new CliError(`plugin ${rest[0]} is not installed`);
        const gateway = await reloadGateway(io);
        if (io.json) io.emit({ id: rest[0], removed: true, gateway });
        else io.say(`removed ${rest[0]}; ${gateway}`);
        return 0;
      }
      case 'grant': {
        if (!rest[0] || !rest[1]) throw new UsageError('grant needs a plugin id and a permission');
        const record = withAudit(io, (audit) => {
          let rec;
          try {
            rec = grantPermission(io.paths, rest[0], rest[1]);
          } catch (err) {
            throw new CliError((err as Error).message);
          }
          audit.append({ actor: 'cli', action: 'plugin.grant', target: rest[0], data: { permission: rest[1] } });
          return rec;
        });
        const gateway = await reloadGateway(io);
        if (io.json) io.emit({ id: rest[0], granted: record.granted, gateway });
        else io.say(`granted ${rest[1]} to ${rest[0]}; ${gateway}`);
        return 0;
      }
      default:
        throw new UsageError(sub ? `unknown subcommand "${sub}"` : 'which subcommand?');
    }
  },
};
