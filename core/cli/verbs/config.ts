import { existsSync, readFileSync } from 'node:fs';
import { CliError, UsageError } from '../../errors.ts';
import { ConfigError, loadConfig, parseConfigText, saveConfig, setPath, splitPath, getPath } from '../../config/config.ts';
import { changedPaths } from '../../config/live.ts';
import { checkPluginConfig } from '../../plugins/config-check.ts';
import { verifiedManifests } from '../../plugins/installed.ts';
import { ensureHome } from '../../home.ts';
import { acquireLock, readRunInfo } from '../../gateway/lock.ts';
import { openDb } from '../../store/db.ts';
import { openAuditLog } from '../../audit.ts';
import type { Verb, CliIO } from '../main.ts';
import { connectOwner, cliErrorOf } from '../connect.ts';

const usage = `usage: carapace config get [PATH] [--json]
       carapace config set PATH VALUE
       carapace config unset PATH
       carapace config validate [--file FILE]

PATH is dotted (gateway.port) or a JSON pointer (/gateway/port). VALUE is JSON
when it parses as JSON, otherwise a string. Every change is checked against the
schema before it is written, and recorded in the audit log.`;

function load(io: CliIO) {
  try {
    return loadConfig(io.paths.config);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(`${io.paths.config}: ${err.message}`);
    throw err;
  }
}

function parseValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * A running gateway makes the change itself (`config.set` over the bus as the
 * owner device, so its audit entry names the device and it applies at once);
 * otherwise write it with the home locked, then audit it.
 */
async function change(io: CliIO, path: string, value: unknown): Promise<void> {
  const client = readRunInfo(io.paths) ? await connectOwner(io.paths) : null;
  if (client) {
    try {
      await client.request('config.set', value === undefined ? { path, unset: true } : { path, value });
    } catch (err) {
      throw cliErrorOf(err);
    } finally {
      client.close();
    }
    return;
  }
  ensureHome(io.paths);
  // Locked before reading: two offline sets at once would each write what they read.
  const release = acquireLock(io.paths, { waitMs: 5_000 });
  try {
    const loaded = load(io);
    let next: Record<string, unknown>;
    try {
      next = setPath(loaded.raw, splitPath(path), value);
    } catch (err) {
      if (err instanceof ConfigError) throw new CliError(err.message);
      throw err;
    }
    try {
      checkPluginConfig(next, verifiedManifests(io.paths));
      saveConfig(io.paths.config, next);
    } catch (err) {
      if (err instanceof ConfigError) throw new CliError(`${err.message} (nothing was written)`);
      throw err;
    }
    const db = openDb(io.paths.db);
    try {
      openAuditLog(db, io.paths).append({
        actor: 'cli:owner',
        action: 'config.set',
        target: 'config.json',
        data: { paths: changedPaths(loaded.raw, next) },
      });
    } finally {
      db.close();
    }
  } finally {
    release();
  }
}

export const verb: Verb = {
  usage,
  options: { file: { type: 'string' } },
  async run(io, { positionals, values }) {
    const [sub, path, ...rest] = positionals;
    switch (sub) {
      case 'get': {
        const { config } = load(io);
        const value = path === undefined ? config : getPath(config, splitPath(path));
        if (value === undefined) throw new CliError(`no value at ${path}`);
        io.emit(value);
        return 0;
      }
      case 'set': {
        if (path === undefined || rest.length !== 1) throw new UsageError('config set takes PATH and VALUE');
        const value = parseValue(rest[0]);
        await change(io, path, value);
        if (io.json) io.emit({ path, value });
        else io.say(`set ${path}`);
        return 0;
      }
      case 'unset': {
        if (path === undefined || rest.length !== 0) throw new UsageError('config unset takes PATH');
        await change(io, path, undefined);
        if (io.json) io.emit({ path, unset: true });
        else io.say(`unset ${path}`);
        return 0;
      }
      case 'validate': {
        const file = (values.file as string | undefined) ?? io.paths.config;
        if (!existsSync(file)) {
          if (values.file) throw new CliError(`${file} does not exist`);
          if (io.json) io.emit({ valid: true, file, exists: false });
          else io.say(`no ${file}: the embedded defaults apply`);
          return 0;
        }
        try {
          checkPluginConfig(parseConfigText(readFileSync(file, 'utf8')), verifiedManifests(io.paths));
        } catch (err) {
          if (err instanceof ConfigError) {
            if (io.json) io.emit({ valid: false, file, path: err.path, error: err.message });
            throw new CliError(`${file}: ${err.message}`);
          }
          throw err;
        }
        if (io.json) io.emit({ valid: true, file, exists: true });
        else io.say(`${file} is valid`);
        return 0;
      }
      default:
        throw new UsageError(sub === undefined ? 'config needs a sub-verb' : `unknown sub-verb "${sub}"`);
    }
  },
};
