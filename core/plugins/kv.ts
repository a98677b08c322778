import type { Db } from '../store/db.ts';

// The only writer of `plugin_kv`. Every statement is bound to one plugin id, so a
// plugin cannot name another plugin's rows whatever key it passes.

export const KV_MAX_KEY = 512;
export const KV_MAX_VALUE_BYTES = 1024 * 1024;
export const KV_MAX_ROWS = 10_000;
const LIST_LIMIT = 1000;

export interface PluginKv {
  get(key: string): unknown;
  set(key: string, value: unknown): void;
  delete(key: string): void;
  list(prefix: string): { key: string; value: unknown }[];
}

export function createPluginKv(db: Db, pluginId: string): PluginKv {
  const get = db.prepare('SELECT value FROM plugin_kv WHERE plugin_id = ? AND key = ?');
  const upsert = db.prepare(
    'INSERT INTO plugin_kv (plugin_id, key, value, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT(plugin_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at',
  );
  const del = db.prepare('DELETE FROM plugin_kv WHERE plugin_id = ? AND key = ?');
  const count = db.prepare('SELECT count(*) AS n FROM plugin_kv WHERE plugin_id = ?');
  // substr() rather than LIKE: a prefix holding % or _ must not match more than itself.
  const list = db.prepare('SELECT key, value FROM plugin_kv WHERE plugin_id = ? AND substr(key, 1, ?) = ? ORDER BY key LIMIT ?');
  const checkKey = (key: unknown): string => {
    if (typeof key !== 'string' || key.length === 0 || key.length > KV_MAX_KEY) throw new Error(`kv keys are strings of 1..${KV_MAX_KEY} characters`);
    return key;
  };
  return {
    get(key) {
      const row = get.get(pluginId, checkKey(key)) as { value: string } | undefined;
      return row ? JSON.parse(row.value) : null;
    },
    set(key, value) {
      const text = JSON.stringify(value ?? null);
      if (Buffer.byteLength(text) > KV_MAX_VALUE_BYTES) throw new Error(`kv values are at most ${KV_MAX_VALUE_BYTES} bytes of JSON`);
      const k = checkKey(key);
      if (!get.get(pluginId, k) && (count.get(pluginId) as { n: number }).n >= KV_MAX_ROWS) throw new Error(`kv is full (${KV_MAX_ROWS} keys per plugin)`);
      upsert.run(pluginId, k, text, Date.now());
    },
    delete(key) {
      del.run(pluginId, checkKey(key));
    },
    list(prefix) {
      const p = typeof prefix === 'string' ? prefix : '';
      return (list.all(pluginId, p.length, p, LIST_LIMIT) as { key: string; value: string }[]).map((r) => ({ key: r.key, value: JSON.parse(r.value) }));
    },
  };
}
