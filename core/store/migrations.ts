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
    // owner: core/channels/inbox.ts — every accepted inbound message, keyed for de-duplication
    id: '0500-channels-inbound',
    sql: `CREATE TABLE channel_inbound (
      id INTEGER PRIMARY KEY,
      channel TEXT NOT NULL,
      account TEXT NOT NULL,
      platform_message_id TEXT NOT NULL,
      received_at INTEGER NOT NULL,
      state TEXT NOT NULL,
      reason TEXT,
      agent_id TEXT,
      session_key TEXT,
      envelope TEXT,
      UNIQUE (channel, account, platform_message_id)
    );
    CREATE INDEX channel_inbound_state ON channel_inbound(state, id);
    CREATE INDEX channel_inbound_received ON channel_inbound(received_at);`,
  },
  {
    // owner: core/channels/pairing.ts — chat senders asking for DM access, and those approved
    id: '0501-channels-pairing',
    sql: `CREATE TABLE channel_pairing (
      id INTEGER PRIMARY KEY,
      channel TEXT NOT NULL,
      sender_id TEXT NOT NULL,
      sender_name TEXT,
      code TEXT NOT NULL,
      state TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      expires_at INTEGER NOT NULL,
      resolved_at INTEGER,
      resolved_by TEXT
    );
    CREATE INDEX channel_pairing_sender ON channel_pairing(channel, sender_id, expires_at);
    CREATE INDEX channel_pairing_code ON channel_pairing(channel, code);
    CREATE TABLE channel_allow (
      channel TEXT NOT NULL,
      sender_id TEXT NOT NULL,
      approved_at INTEGER NOT NULL,
      approved_by TEXT NOT NULL,
      PRIMARY KEY (channel, sender_id)
    );`,
  },
  {
    // owner: core/channels/delivery.ts — the durable outbound queue
    id: '0502-channels-outbox',
    sql: `CREATE TABLE channel_outbox (
      id INTEGER PRIMARY KEY,
      idempotency_key TEXT NOT NULL UNIQUE,
      channel TEXT NOT NULL,
      lane TEXT NOT NULL,
      message TEXT NOT NULL,
      session_key TEXT,
      state TEXT NOT NULL,
      attempts INTEGER NOT NULL DEFAULT 0,
      next_attempt_at INTEGER NOT NULL,
      last_error TEXT,
      platform_message_id TEXT,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL
    );
    CREATE INDEX channel_outbox_open ON channel_outbox(state, id);`,
  },
  {
    // owner: core/channels/hooks.ts — webhook requests by their idempotency id
    id: '0503-channels-hooks',
    sql: `CREATE TABLE hook_requests (
      hook TEXT NOT NULL,
      request_id TEXT NOT NULL,
      run_id TEXT NOT NULL,
      received_at INTEGER NOT NULL,
      PRIMARY KEY (hook, request_id)
    );`,
  },
];
