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
    // owner: core/bus/devices.ts (devices, device_pairing_requests, device_invites)
    id: '0100-bus-devices',
    sql: `CREATE TABLE devices (
      id TEXT PRIMARY KEY,
      public_key TEXT NOT NULL,
      role TEXT NOT NULL,
      scopes TEXT NOT NULL,
      name TEXT,
      platform TEXT,
      paired_at INTEGER NOT NULL,
      paired_by TEXT NOT NULL,
      revoked_at INTEGER,
      revoked_by TEXT,
      last_seen_at INTEGER
    );
    CREATE TABLE device_pairing_requests (
      id TEXT PRIMARY KEY,
      code TEXT NOT NULL UNIQUE,
      device_id TEXT NOT NULL UNIQUE,
      public_key TEXT NOT NULL,
      role TEXT NOT NULL,
      scopes TEXT NOT NULL,
      client TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      expires_at INTEGER NOT NULL
    );
    CREATE TABLE device_invites (
      id TEXT PRIMARY KEY,
      code_hash TEXT NOT NULL UNIQUE,
      role TEXT NOT NULL,
      scopes TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      created_by TEXT NOT NULL,
      expires_at INTEGER NOT NULL,
      failed_tries INTEGER NOT NULL DEFAULT 0,
      used_at INTEGER,
      used_by TEXT
    );`,
  },
  {
    // owner: core/bus/methods.ts (results of RPC calls that carried an idempotencyKey)
    id: '0101-bus-method-results',
    sql: `CREATE TABLE bus_method_results (
      device_id TEXT NOT NULL,
      method TEXT NOT NULL,
      idem_key TEXT NOT NULL,
      result TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      PRIMARY KEY (device_id, method, idem_key)
    );
    CREATE INDEX bus_method_results_created ON bus_method_results(created_at);`,
  },
];
