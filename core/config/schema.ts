// The kernel's config.json schema (config.md). Unknown keys are errors everywhere
// the kernel owns the shape; plugin-specific config is checked against the
// plugin's own manifest schema by the plugin host.

const secretRef = {
  type: 'object',
  properties: { secret: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]{0,127}$' } },
  required: ['secret'],
  additionalProperties: false,
} as const;

/** A credential: a secrets-store reference, an `${ENV}` reference, or null. Never a literal. */
const credential = {
  anyOf: [secretRef, { type: 'string', pattern: '^\\$\\{[A-Za-z_][A-Za-z0-9_]*\\}$' }, { type: 'null' }],
} as const;

const stringList = { type: 'array', items: { type: 'string' } } as const;
const modelRef = { type: 'string', pattern: '^[A-Za-z0-9_.-]+/.+$' } as const;

const toolPolicy = {
  type: 'object',
  properties: {
    profile: { enum: ['minimal', 'messaging', 'coding', 'full'] },
    allow: stringList,
    deny: stringList,
    requireApproval: stringList,
  },
  additionalProperties: false,
} as const;

const agentSettings = {
  model: {
    anyOf: [
      modelRef,
      {
        type: 'object',
        properties: { primary: modelRef, fallbacks: { type: 'array', items: modelRef } },
        required: ['primary'],
        additionalProperties: false,
      },
    ],
  },
  workspace: { type: 'string' },
  maxSteps: { type: 'integer', minimum: 1, maximum: 1000 },
  budget: {
    type: 'object',
    properties: {
      tokensPerRun: { type: 'integer', minimum: 1 },
      usdPerDay: { type: 'number', minimum: 0 },
    },
    additionalProperties: false,
  },
  tools: toolPolicy,
  compaction: {
    type: 'object',
    properties: { atFraction: { type: 'number', exclusiveMinimum: 0, maximum: 1 } },
    additionalProperties: false,
  },
  heartbeat: {
    type: 'object',
    properties: {
      everyMinutes: { type: ['integer', 'null'], minimum: 1 },
      deliver: { type: ['string', 'null'] },
    },
    additionalProperties: false,
  },
} as const;

const channel = {
  type: 'object',
  properties: {
    enabled: { type: 'boolean' },
    dmPolicy: { enum: ['pairing', 'allowlist', 'open', 'disabled'] },
    allowFrom: stringList,
    groupPolicy: { enum: ['allowlist', 'open', 'disabled'] },
    groups: { type: 'object', additionalProperties: { type: 'object' } },
    requireMention: { type: 'boolean' },
    apiBaseUrl: { type: ['string', 'null'] },
  },
  // Channel plugins add their own keys, checked against the plugin's manifest schema.
  additionalProperties: true,
} as const;

export const configSchema = {
  $id: 'carapace.config/v1',
  type: 'object',
  properties: {
    $schema: { type: 'string' },
    gateway: {
      type: 'object',
      properties: {
        bind: { type: 'string', pattern: '^(loopback|lan|[0-9a-fA-F:.]+)$' },
        port: { type: 'integer', minimum: 0, maximum: 65535 },
        tls: {
          anyOf: [
            { type: 'null' },
            {
              type: 'object',
              properties: { cert: { type: 'string' }, key: { type: 'string' } },
              required: ['cert', 'key'],
              additionalProperties: false,
            },
          ],
        },
        maxPayload: { type: 'integer', minimum: 1024, maximum: 64 * 1024 * 1024 },
        allowedOrigins: stringList,
        publicUrl: { type: ['string', 'null'] },
        pluginIdleSeconds: { type: 'integer', minimum: 0, maximum: 7 * 24 * 3600 },
        limits: {
          type: 'object',
          properties: {
            maxInflight: { type: 'integer', minimum: 1, maximum: 4096 },
            sendBufferBytes: { type: 'integer', minimum: 64 * 1024, maximum: 1024 * 1024 * 1024 },
            maxSockets: { type: 'integer', minimum: 1, maximum: 65_536 },
          },
          additionalProperties: false,
        },
      },
      additionalProperties: false,
    },
    providers: {
      type: 'object',
      propertyNames: { pattern: '^[a-z0-9][a-z0-9_-]{0,63}$' },
      additionalProperties: {
        type: 'object',
        properties: {
          api: { enum: ['anthropic', 'openai'] },
          apiKey: credential,
          authHeader: { enum: ['x-api-key', 'bearer'] },
          baseUrl: { type: ['string', 'null'] },
          // http(s)://host:port only: credentials in a URL would be a secret written into config.json.
          proxy: { type: ['string', 'null'], pattern: '^https?://[^/@\\s?#]+/?$' },
          timeoutMs: { type: 'integer', minimum: 100 },
          models: { type: 'array', items: { type: 'object' } },
        },
        additionalProperties: false,
      },
    },
    agents: {
      type: 'object',
      properties: {
        defaults: { type: 'object', properties: agentSettings, additionalProperties: false },
        list: {
          type: 'array',
          items: {
            type: 'object',
            properties: { id: { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,63}$' }, name: { type: 'string' }, ...agentSettings },
            required: ['id'],
            additionalProperties: false,
          },
        },
      },
      additionalProperties: false,
    },
    bindings: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          agentId: { type: 'string' },
          match: {
            type: 'object',
            properties: {
              channel: { type: 'string' },
              account: { type: 'string' },
              peer: { type: 'string' },
              group: { type: 'string' },
            },
            additionalProperties: false,
          },
        },
        required: ['agentId', 'match'],
        additionalProperties: false,
      },
    },
    session: {
      type: 'object',
      properties: {
        dmScope: { enum: ['main', 'per-peer', 'per-channel-peer', 'per-account-channel-peer'] },
        idleResetMinutes: { type: ['integer', 'null'], minimum: 1 },
      },
      additionalProperties: false,
    },
    channels: { type: 'object', additionalProperties: channel },
    memory: {
      type: 'object',
      properties: {
        embedder: { type: 'string' },
        hybrid: {
          type: 'object',
          properties: { vectorWeight: { type: 'number', minimum: 0 }, textWeight: { type: 'number', minimum: 0 } },
          additionalProperties: false,
        },
        sessions: { type: 'boolean' },
      },
      additionalProperties: false,
    },
    hooks: {
      type: 'object',
      propertyNames: { pattern: '^[a-z0-9][a-z0-9_-]{0,63}$' },
      additionalProperties: {
        type: 'object',
        properties: {
          secret: credential,
          agentId: { type: 'string' },
          sessionKey: { type: 'string' },
          deliver: { type: ['string', 'null'] },
          action: { enum: ['agent', 'wake'] },
        },
        required: ['secret'],
        additionalProperties: false,
      },
    },
    plugins: {
      type: 'object',
      additionalProperties: {
        type: 'object',
        properties: {
          enabled: { type: 'boolean' },
          config: { type: 'object' },
          // Only narrowing: what a plugin may do beyond its manifest is granted at install (plugins grant).
          grant: { type: 'object', properties: { deny: stringList }, additionalProperties: false },
        },
        additionalProperties: false,
      },
    },
    logging: {
      type: 'object',
      properties: { level: { enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] } },
      additionalProperties: false,
    },
    approvals: {
      type: 'object',
      properties: {
        // Chat identities of the owner: they are asked in that chat and may answer /approve or /deny there.
        chat: {
          type: 'array',
          maxItems: 16,
          items: {
            type: 'object',
            properties: {
              channel: { type: 'string', minLength: 1 },
              peer: { type: 'string', minLength: 1 },
              chatId: { type: 'string', minLength: 1 },
              account: { type: 'string', minLength: 1 },
            },
            required: ['channel', 'peer'],
            additionalProperties: false,
          },
        },
      },
      additionalProperties: false,
    },
  },
  additionalProperties: false,
} as const;
