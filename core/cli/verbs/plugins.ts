import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { CliError, UsageError } from '../../errors.ts';
import type { Verb } from '../main.ts';
import { ensureHome } from '../../home.ts';
import { openDb } from '../../store/db.ts';
import { createAuditLog } from '../../audit.ts';
import { secretValues } from '../../secrets/known.ts';
import { bundledPlugins, installedPlugins } from '../../plugins/installed.ts';
import { loadTrustStore, PluginRefusedError, verifyPlugin, type VerifiedPlugin } from '../../plugins/manifest.ts';
import { grantPermission, inspectFolder, installFolder, removePlugin } from '../../plugins/install.ts';

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

function verifyAll(io: Parameters<Verb['run']>[0]): Row[] {
  const { store } = loadTrustStore(io.paths.trustDir);
  return [...bundledPlugins(), ...installedPlugins(io.paths.pluginsDir)].map((loc) => {
    try {
      const v: VerifiedPlugin = verifyPlugin(readFileSync(loc.manifestFile, 'utf8'), loc.dir, {
        trust: store,
        source: loc.source,
        granted: loc.record?.granted,
        allowWorker: loc.record?.allowWorker,
        ignoreFiles: loc.ignore,
      });
      return { id: loc.id, source: loc.source, version: v.manifest.version, kind: v.manifest.kind, runtime: v.manifest.runtime ?? 'isolate', ok: true, permissions: v.granted };
    } catch (err) {
      if (err instanceof PluginRefusedError) return { id: loc.id, source: loc.source, ok: false, refusal: err.reason, error: err.message };
      return { id: loc.id, source: loc.source, ok: false, refusal: 'unreadable', error: (err as Error).message };
    }
  });
}

export const verb: Verb = {
  usage: `usage: carapace plugins list | install DIR [--yes] [--allow-worker] [--allow-downgrade] | remove ID | verify [ID] | grant ID PERM

  list              bundled and installed plugins, verified, with their permissions
  install DIR       verify a local plugin folder (plugin.json + files), show what it asks for; --yes installs
  remove ID         uninstall a plugin
  verify [ID]       re-check signatures and file hashes (exit 1 if any fails)
  grant ID PERM     add a permission: net:HOST:PORT secret:NAME@HOST fs.read:ROOT fs.write:ROOT env:NAME
                    bus.publish:PATTERN bus.subscribe:PATTERN exec worker
A running gateway picks up changes on its next start.`,
  options: {
    yes: { type: 'boolean', short: 'y' },
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
        return rows.every((r) => r.ok) ? 0 : 1;
      }
      case 'install': {
        if (!rest[0]) throw new UsageError('install needs a plugin folder');
        const dir = resolve(rest[0]);
        const opts = { allowWorker: args.values['allow-worker'] === true, allowDowngrade: args.values['allow-downgrade'] === true };
        let inspected;
        try {
          inspected = inspectFolder(io.paths, dir, opts);
        } catch (err) {
          if (err instanceof PluginRefusedError) throw new CliError(`refused (${err.reason}): ${err.message}`);
          throw err;
        }
        const m = inspected.verified.manifest;
        const lines = [
          `${m.id} ${m.version} (${m.kind}, runtime ${m.runtime ?? 'isolate'}) signed by ${inspected.verified.key.keyId}${inspected.previous ? `, replacing ${inspected.previous.version}` : ''}`,
          'requests:',
          ...(inspected.requested.length ? inspected.requested.map((p) => `  ${p}`) : ['  (no permissions)']),
        ];
        if ((m.runtime ?? 'isolate') === 'worker') lines.push('WARNING: the worker runtime runs full Node.js in a thread of the gateway: it can reach whatever the gateway process can (files, network, memory).');
        if (!args.values.yes) {
          if (io.json) io.emit({ id: m.id, version: m.version, requested: inspected.requested, installed: false });
          else io.say([...lines, 'not installed: re-run with --yes to accept these permissions'].join('\n'));
          return 1;
        }
        const record = withAudit(io, (audit) => {
          const rec = installFolder(io.paths, dir, opts);
          audit.append({ actor: 'cli', action: 'plugin.install', target: m.id, data: { version: m.version, granted: rec.granted, keyId: inspected.verified.key.keyId, digest: inspected.verified.digest } });
          return rec;
        });
        if (io.json) io.emit({ id: m.id, version: m.version, granted: record.granted, installed: true });
        else io.say([...lines, `installed ${m.id} ${m.version}`].join('\n'));
        return 0;
      }
      case 'remove': {
        if (!rest[0]) throw new UsageError('remove needs a plugin id');
        const removed = withAudit(io, (audit) => {
          const ok = removePlugin(io.paths, rest[0]);
          if (ok) audit.append({ actor: 'cli', action: 'plugin.remove', target: rest[0] });
          return ok;
        });
        if (!removed) throw new CliError(`plugin ${rest[0]} is not installed`);
        if (io.json) io.emit({ id: rest[0], removed: true });
        else io.say(`removed ${rest[0]}`);
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
        if (io.json) io.emit({ id: rest[0], granted: record.granted });
        else io.say(`granted ${rest[1]} to ${rest[0]}`);
        return 0;
      }
      default:
        throw new UsageError(sub ? `unknown subcommand "${sub}"` : 'which subcommand?');
    }
  },
};
