import { watch, readFileSync, existsSync, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { type Config, type LoadedConfig, ConfigError, defaultConfig, mergeDefaults, parseConfigText, saveConfig, setPath, splitPath, getPath } from './config.ts';
import type { AuditLog } from '../audit.ts';
import type { Logger } from '../log/logger.ts';

export type ConfigListener = (next: Config, prev: Config) => void;
export type ConfigCheck = (raw: Record<string, unknown>) => void;

/**
 * The gateway's view of config.json: the last valid config, reloaded when the file
 * changes. An invalid edit is logged and ignored — the gateway keeps running on
 * the last valid config. Every change, by the file or through `set`, is audited.
 */
export interface LiveConfig {
  readonly current: Config;
  readonly raw: Record<string, unknown>;
  onChange(listener: ConfigListener): () => void;
  /** Validate, write atomically, audit and apply one change. Throws ConfigError. */
  set(path: string, value: unknown, actor: string): void;
  /**
   * A check beyond the kernel schema (a plugin's own keys), run on every change:
   * throwing ConfigError refuses it. Returns its removal.
   */
  addCheck(check: ConfigCheck): () => void;
  reload(actor?: string): boolean;
  close(): void;
}

/** The JSON paths whose values differ between a and b (leaves only). */
export function changedPaths(a: unknown, b: unknown, prefix = ''): string[] {
  if (isDeepStrictEqual(a, b)) return [];
  const obj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (a === undefined && obj(b)) a = {};
  if (b === undefined && obj(a)) b = {};
  if (!obj(a) || !obj(b)) return [prefix || '/'];
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].flatMap((k) => changedPaths(a[k], b[k], `${prefix}/${k}`));
}

export function createLiveConfig(path: string, initial: LoadedConfig, deps: { audit: AuditLog; log: Logger }): LiveConfig {
  let current = initial.config;
  let raw = initial.raw;
  const listeners = new Set<ConfigListener>();
  const checks = new Set<ConfigCheck>();
  const check = (next: Record<string, unknown>) => {
    for (const c of checks) c(next);
  };
  let watcher: FSWatcher | null = null;
  let debounce: NodeJS.Timeout | null = null;

  function apply(nextRaw: Record<string, unknown>, actor: string, action: string): void {
    const prev = current;
    const changed = changedPaths(raw, nextRaw);
    raw = nextRaw;
    current = mergeDefaults(defaultConfig(), nextRaw);
    if (changed.length === 0) return;
    deps.audit.append({
      actor,
      action,
      target: 'config.json',
      data: { paths: changed, changes: changed.slice(0, 50).map((p) => ({ path: p, old: maskPath(p, getPath(prev, splitPath(p))), new: maskPath(p, getPath(current, splitPath(p))) })) },
    });
    for (const l of listeners) {
      try {
        l(current, prev);
      } catch (err) {
        deps.log.error('config listener failed', { err });
      }
    }
  }

  /**
   * What config.json holds now, to change: an edit not yet picked up is kept, and
   * one that was refused is not overwritten by a change made on top of the last
   * valid config — the change is refused until the edit is corrected.
   */
  function onDisk(): Record<string, unknown> {
    if (!existsSync(path)) return {};
    try {
      const parsed = parseConfigText(readFileSync(path, 'utf8'));
      check(parsed);
      return parsed;
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      throw new ConfigError(err.path, `${err.reason} — an edit in config.json that is not applied; correct it first: a change now would overwrite it`);
    }
  }

  const live: LiveConfig = {
    get current() {
      return current;
    },
    get raw() {
      return raw;
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    addCheck(c) {
      checks.add(c);
      return () => checks.delete(c);
    },
    set(p, value, actor) {
      const next = setPath(onDisk(), splitPath(p), value);
      check(next);
      saveConfig(path, next);
      apply(next, actor, 'config.set');
    },
    reload(actor = 'file') {
      if (!existsSync(path)) {
        apply({}, actor, 'config.reload');
        return true;
      }
      try {
        const next = parseConfigText(readFileSync(path, 'utf8'));
        check(next);
        apply(next, actor, 'config.reload');
        return true;
      } catch (err) {
        const message = err instanceof ConfigError ? err.message : String(err);
        deps.log.error('config.json is invalid; keeping the last valid config', { error: message });
        return false;
      }
    },
    close() {
      watcher?.close();
      if (debounce) clearTimeout(debounce);
    },
  };

  // Watch the directory, not the file: atomic writes replace the inode.
  try {
    watcher = watch(dirname(path), { persistent: false }, (_event, file) => {
      if (file !== basename(path)) return;
      if (debounce) clearTimeout(debounce);
      debounce = setTimeout(() => live.reload(), 100);
    });
  } catch (err) {
    deps.log.warn('cannot watch config.json; changes apply on restart', { err });
  }
  return live;
}

/** Values under credential-shaped keys are masked in the audit trail. */
function maskPath(path: string, value: unknown): unknown {
  return /secret|apiKey|token|password/i.test(path) && value !== undefined && value !== null && typeof value !== 'object' ? '[redacted]' : value;
}
