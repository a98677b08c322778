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
    // owner: core/approvals/approvals.ts
    id: '0400-tools-approvals',
    sql: `CREATE TABLE approvals (
      id TEXT PRIMARY KEY,
      tool TEXT NOT NULL,
      input TEXT NOT NULL,
      agent_id TEXT NOT NULL,
      session_key TEXT NOT NULL,
      run_id TEXT,
      status TEXT NOT NULL CHECK (status IN ('pending','approved','denied','timeout')),
      requested_at INTEGER NOT NULL,
      expires_at INTEGER NOT NULL,
      decided_at INTEGER,
      decided_by TEXT
    );
    CREATE INDEX approvals_status ON approvals(status, requested_at);`,
  },
  {
    // owner: core/scheduler/store.ts (cron_jobs and cron_runs)
    id: '0401-tools-cron',
    sql: `CREATE TABLE cron_jobs (
      id TEXT PRIMARY KEY,
      name TEXT,
      agent_id TEXT NOT NULL,
      kind TEXT NOT NULL CHECK (kind IN ('cron','at','every')),
      expr TEXT,
      tz TEXT,
      at_ms INTEGER,
      every_ms INTEGER,
      message TEXT NOT NULL,
      session_key TEXT,
      deliver TEXT,
      missed TEXT NOT NULL CHECK (missed IN ('run-once','skip')),
      enabled INTEGER NOT NULL DEFAULT 1,
      next_run_at INTEGER,
      running_by TEXT,
      running_since INTEGER,
      last_run_at INTEGER,
      last_status TEXT,
      created_at INTEGER NOT NULL,
      created_by TEXT NOT NULL
    );
    CREATE INDEX cron_jobs_due ON cron_jobs(enabled, next_run_at);
    CREATE TABLE cron_runs (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      job_id TEXT NOT NULL,
      scheduled_for INTEGER NOT NULL,
      started_at INTEGER NOT NULL,
      finished_at INTEGER,
      status TEXT NOT NULL CHECK (status IN ('running','ok','error','skipped')),
      reason TEXT,
      output TEXT,
      instance TEXT NOT NULL,
      UNIQUE (job_id, scheduled_for)
    );
    CREATE INDEX cron_runs_job ON cron_runs(job_id, id);`,
  },
  {
    // owner: core/agent/store.ts (sessions, transcripts, runs with usage and cost)
    id: '0300-agent-sessions',
    sql: `CREATE TABLE agent_sessions (
      session_key TEXT PRIMARY KEY,
      agent_id TEXT NOT NULL,
      session_id TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL,
      summary TEXT
    );
    CREATE TABLE agent_messages (
      id INTEGER PRIMARY KEY,
      session_id TEXT NOT NULL,
      session_key TEXT NOT NULL,
      run_id TEXT,
      role TEXT NOT NULL,
      content TEXT NOT NULL,
      compacted INTEGER NOT NULL DEFAULT 0,
      created_at INTEGER NOT NULL
    );
    CREATE INDEX agent_messages_session ON agent_messages(session_id, compacted, id);
    CREATE INDEX agent_messages_key ON agent_messages(session_key, id);
    CREATE TABLE agent_runs (
      run_id TEXT PRIMARY KEY,
      session_key TEXT NOT NULL,
      session_id TEXT NOT NULL,
      agent_id TEXT NOT NULL,
      started_at INTEGER NOT NULL,
      ended_at INTEGER,
      status TEXT NOT NULL,
      stop_reason TEXT,
      model TEXT,
      steps INTEGER NOT NULL DEFAULT 0,
      input_tokens INTEGER NOT NULL DEFAULT 0,
      output_tokens INTEGER NOT NULL DEFAULT 0,
      cache_read_tokens INTEGER NOT NULL DEFAULT 0,
      cache_write_tokens INTEGER NOT NULL DEFAULT 0,
      cost_usd REAL NOT NULL DEFAULT 0,
      error TEXT
    );
    CREATE INDEX agent_runs_agent_started ON agent_runs(agent_id, started_at);`,
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
  {
    // owner: core/agent/store.ts — messages accepted for a turn that has not started yet
    // (queued behind another run of the session). Written durably when `send` accepts
    // a message; removed in the same transaction that starts its run; what is left at
    // start-up is run then, so an accepted message is never lost to a restart.
    id: '0302-agent-inbox',
    sql: `CREATE TABLE agent_inbox (
      run_id TEXT PRIMARY KEY,
      session_key TEXT NOT NULL,
      agent_id TEXT NOT NULL,
      text TEXT NOT NULL,
      origin TEXT,
      accepted_at INTEGER NOT NULL
    );`,
  },
  {
    // owner: core/channels/pairing.ts — where the code was asked from ({chatId, account, threadId}
    // as JSON), so the confirmation reaches the same chat: a DM channel id is not the user id
    id: '0900-channele2e-pairing-origin',
    sql: `ALTER TABLE channel_pairing ADD COLUMN origin TEXT;`,
  },
];
