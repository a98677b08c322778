// The JSON schema of `carapace.plugin/v1` (manifest.md), compiled once by manifest.ts.

export const PLUGIN_ID = '^(@[a-z0-9][a-z0-9-]{0,63}/)?[a-z0-9][a-z0-9-]{0,63}$';
/** Relative paths only: no absolute path, no `.`/`..` or hidden segments, no empty segment. */
export const FILE_PATH = '^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$';
export const FILE_DIGEST = '^sha256-[A-Za-z0-9+/]{43}=$';
export const NET_TARGET = '^(\\*|\\[[0-9a-fA-F:.]+\\]|(\\*\\.)?[a-z0-9-]+(\\.[a-z0-9-]+)*):[0-9]{1,5}$';
export const HOST_NAME = '^(\\[[0-9a-fA-F:.]+\\]|(\\*\\.)?[a-z0-9-]+(\\.[a-z0-9-]+)*)$';
export const SECRET_NAME = '^[A-Z][A-Z0-9_]{0,63}$';
export const FS_ROOT = '^\\$(WORKSPACE|PLUGIN_DATA)(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$';
export const TOPIC_PATTERN = '^([a-zA-Z0-9_:@-]+|\\*)(\\.([a-zA-Z0-9_:@-]+|\\*))*(\\.>)?$|^>$';
export const SEMVER = '^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\\+[0-9A-Za-z.-]+)?$';

const stringList = (pattern: string) => ({ type: 'array', items: { type: 'string', pattern }, uniqueItems: true, maxItems: 256 });

const toolDef = {
  type: 'object',
  required: ['name', 'description', 'input'],
  properties: {
    name: { type: 'string', pattern: '^[a-zA-Z][a-zA-Z0-9_]{0,63}$' },
    description: { type: 'string', maxLength: 4096 },
    input: { type: 'object' },
  },
  additionalProperties: false,
};

const modelDef = {
  type: 'object',
  required: ['id'],
  properties: {
    id: { type: 'string', minLength: 1, maxLength: 200 },
    contextWindow: { type: 'integer', minimum: 1 },
    maxTokens: { type: 'integer', minimum: 1 },
    input: { type: 'array', items: { enum: ['text', 'image'] } },
    price: { type: 'object' },
  },
  additionalProperties: false,
};

export const manifestSchema = {
  type: 'object',
  required: ['schema', 'id', 'name', 'version', 'kind', 'entry', 'files'],
  properties: {
    schema: { const: 'carapace.plugin/v1' },
    id: { type: 'string', pattern: PLUGIN_ID },
    name: { type: 'string', minLength: 1, maxLength: 100 },
    version: { type: 'string', pattern: SEMVER, maxLength: 64 },
    kind: { enum: ['channel', 'provider', 'memory', 'tool'] },
    description: { type: 'string', maxLength: 1000 },
    license: { type: 'string', maxLength: 100 },
    homepage: { type: 'string', maxLength: 500 },
    publisher: {
      type: 'object',
      required: ['name'],
      properties: { name: { type: 'string', maxLength: 100 }, keyId: { type: 'string', pattern: '^[0-9a-f]{16}$' } },
      additionalProperties: false,
    },
    runtime: { enum: ['isolate', 'worker'] },
    entry: { type: 'string', pattern: FILE_PATH },
    files: {
      type: 'object',
      propertyNames: { pattern: FILE_PATH, maxLength: 256 },
      additionalProperties: { type: 'string', pattern: FILE_DIGEST },
      minProperties: 1,
      maxProperties: 1000,
    },
    engines: { type: 'object', properties: { carapace: { type: 'string', maxLength: 64 } }, additionalProperties: false },
    permissions: {
      type: 'object',
      properties: {
        net: stringList(NET_TARGET),
        secrets: {
          type: 'object',
          propertyNames: { pattern: SECRET_NAME },
          additionalProperties: stringList(HOST_NAME),
        },
        fs: {
          type: 'object',
          properties: { read: stringList(FS_ROOT), write: stringList(FS_ROOT) },
          additionalProperties: false,
        },
        env: stringList(SECRET_NAME),
        bus: {
          type: 'object',
          properties: { publish: stringList(TOPIC_PATTERN), subscribe: stringList(TOPIC_PATTERN) },
          additionalProperties: false,
        },
        exec: { type: 'boolean' },
      },
      additionalProperties: false,
    },
    limits: {
      type: 'object',
      properties: {
        memoryMb: { type: 'integer', minimum: 8, maximum: 4096 },
        callTimeoutMs: { type: 'integer', minimum: 10, maximum: 600000 },
        cpuMsPerCall: { type: 'integer', minimum: 1, maximum: 600000 },
        maxResponseBytes: { type: 'integer', minimum: 1024, maximum: 104857600 },
        maxPendingCalls: { type: 'integer', minimum: 1, maximum: 4096 },
      },
      additionalProperties: false,
    },
    config: { type: 'object' },
    provides: {
      type: 'object',
      properties: {
        tools: { type: 'array', items: toolDef, maxItems: 256 },
        models: { type: 'array', items: modelDef, maxItems: 1000 },
        channel: {
          type: 'object',
          properties: {
            chunkLimit: { type: 'integer', minimum: 1 },
            groups: { type: 'boolean' },
            threads: { type: 'boolean' },
            media: { type: 'boolean' },
            markdown: { enum: ['none', 'basic', 'full'] },
            authenticatedSender: { type: 'boolean' },
          },
          additionalProperties: false,
        },
      },
      additionalProperties: false,
    },
    signature: {
      type: 'object',
      required: ['alg', 'keyId', 'sig'],
      properties: {
        alg: { const: 'ed25519' },
        keyId: { type: 'string', pattern: '^[0-9a-f]{16}$' },
        sig: { type: 'string', maxLength: 200 },
      },
      additionalProperties: false,
    },
  },
  additionalProperties: false,
} as const;
