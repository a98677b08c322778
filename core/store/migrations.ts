// Every schema change, in order, named by id. Applied ids are recorded in
// schema_migrations, so a database that has an id this list lacks was written by
// a newer Carapace and is refused rather than misread. Append only; never edit
// a migration that has shipped. Each table names its one owning (writing) module.

export interface Migration {
  id: string;
  sql: string;
}

export const migrations: readonly Migration[] = [
  {
    // owner: core/audit.ts
    id: '0001-audit',
    sql: `CREATE TABLE audit (
      seq INTEGER PRIMARY KEY,
      ts INTEGER NOT NULL,
      actor TEXT NOT NULL,
      action TEXT NOT NULL,
      target TEXT,
      session_key TEXT,
      data TEXT NOT NULL,
      prev_hash TEXT NOT NULL,
      hash TEXT NOT NULL
    );
    CREATE INDEX audit_session ON audit(session_key, seq);
    CREATE INDEX audit_ts ON audit(ts);`,
  },
  {
    // owner: core/plugins/kv.ts — each plugin's own key-value rows (carapace.kv)
    id: '0200-plugins-kv',
    sql: `CREATE TABLE plugin_kv (
      plugin_id TEXT NOT NULL,
      key TEXT NOT NULL,
      value TEXT NOT NULL,
      updated_at INTEGER NOT NULL,
      PRIMARY KEY (plugin_id, key)
    ) WITHOUT ROWID;`,
  },
];
