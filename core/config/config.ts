import type { ErrorObject } from 'ajv';
import { escapePointer, kernelAjv, pointerOf, reasonOf } from '../schema.ts';
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { configSchema } from './schema.ts';
import { writeFileAtomic } from '../home.ts';
import { envRefName } from '../secrets/source.ts';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface ProviderConfig {
  api?: 'anthropic' | 'openai';
  apiKey?: { secret: string } | string | null;
  authHeader?: 'x-api-key' | 'bearer';
  baseUrl?: string | null;
  proxy?: string | null;
  timeoutMs?: number;
  models?: Record<string, unknown>[];
}

export interface ToolPolicy {
  profile?: 'minimal' | 'messaging' | 'coding' | 'full';
  allow?: string[];
  deny?: string[];
  requireApproval?: string[];
}

export interface AgentSettings {
  model?: string | { primary: string; fallbacks?: string[] };
  workspace?: string;
  maxSteps?: number;
  budget?: { tokensPerRun?: number; usdPerDay?: number };
  tools?: ToolPolicy;
  compaction?: { atFraction?: number };
  heartbeat?: { everyMinutes?: number | null; deliver?: string | null };
}

export interface ChannelConfig {
  enabled?: boolean;
  dmPolicy?: 'pairing' | 'allowlist' | 'open' | 'disabled';
  allowFrom?: string[];
  groupPolicy?: 'allowlist' | 'open' | 'disabled';
  groups?: Record<string, Record<string, unknown>>;
  requireMention?: boolean;
  apiBaseUrl?: string | null;
  [key: string]: unknown;
}

export interface Config {
  gateway: {
    bind: string;
    port: number;
    tls: { cert: string; key: string } | null;
    maxPayload: number;
    allowedOrigins: string[];
    publicUrl?: string | null;
    /** Seconds without a call after which a plugin is parked (host.ts); 0: never. Ten minutes: a conversation's pauses keep plugins warm, an evening without one gives their memory back. */
    pluginIdleSeconds: number;
    /** The bus's per-socket and total limits (protocol.md "Limits (defaults, configurable)"); the frame limit is maxPayload. */
    limits: { maxInflight: number; sendBufferBytes: number; maxSockets: number };
  };
  providers: Record<string, ProviderConfig>;
  agents: { defaults: AgentSettings; list: (AgentSettings & { id: string; name?: string })[] };
  bindings: { agentId: string; match: { channel?: string; account?: string; peer?: string; group?: string } }[];
  session: { dmScope: 'main' | 'per-peer' | 'per-channel-peer' | 'per-account-channel-peer'; idleResetMinutes: number | null };
  channels: Record<string, ChannelConfig>;
  memory: { embedder: string; hybrid: { vectorWeight: number; textWeight: number }; sessions?: boolean };
  hooks: Record<string, { secret: { secret: string } | string | null; agentId?: string; sessionKey?: string; deliver?: string | null; action?: 'agent' | 'wake' }>;
  plugins: Record<string, { enabled?: boolean; config?: Record<string, unknown>; grant?: Record<string, unknown> }>;
  logging: { level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' };
  /** `chat`: the owner on chat channels, asked there for tool approvals (`peer`: their sender id; `chatId`: where to ask, default the peer). */
  approvals: { chat: { channel: string; peer: string; chatId?: string; account?: string }[] };
}

/** The embedded defaults: what `npm start` runs with when there is no config.json at all. */
export function defaultConfig(): Config {
  return {
    gateway: { bind: 'loopback', port: 18789, tls: null, maxPayload: 1024 * 1024, allowedOrigins: [], pluginIdleSeconds: 600, limits: { maxInflight: 64, sendBufferBytes: 8 * 1024 * 1024, maxSockets: 256 } },
    providers: {},
    agents: {
      defaults: {
        maxSteps: 24,
        budget: { tokensPerRun: 200_000, usdPerDay: 5 },
        tools: { allow: ['*'], deny: [], requireApproval: ['exec', 'files.write'] },
        compaction: { atFraction: 0.8 },
      },
      list: [{ id: 'main' }],
    },
    bindings: [{ agentId: 'main', match: { channel: '*' } }],
    session: { dmScope: 'per-channel-peer', idleResetMinutes: null },
    channels: { webchat: { enabled: true, dmPolicy: 'open' } },
    memory: { embedder: 'local', hybrid: { vectorWeight: 0.6, textWeight: 0.4 } },
    hooks: {},
    plugins: {},
    logging: { level: 'info' },
    approvals: { chat: [] },
  };
}

export class ConfigError extends Error {
  readonly path: string;
  /** What is wrong at `path`, without the path. */
  readonly reason: string;
  constructor(path: string, reason: string) {
    super(`config${path ? ' ' + path : ''}: ${reason}`);
    this.name = 'ConfigError';
    this.path = path;
    this.reason = reason;
  }
}

const validateConfigShape = kernelAjv.compile(configSchema);

function describe(errors: ErrorObject[]): ConfigError {
  // A failed anyOf lists each branch's complaint first; for a credential, the anyOf itself says what is meant.
  const credential = errors.find((e) => e.keyword === 'anyOf' && /apiKey|secret$/.test(e.instancePath));
  if (credential) return new ConfigError(credential.instancePath, 'must be {"secret":"NAME"} or "${ENV_VAR}" — secrets are never written into config.json');
  const err = errors[0];
  // A bad key under a map (providers, hooks): ajv puts the key itself on the propertyNames error that follows.
  const names = errors.find((e) => e.keyword === 'propertyNames' && e.instancePath === err.instancePath);
  if (names) {
    const key = (names.params as { propertyName: string }).propertyName;
    return new ConfigError(`${err.instancePath}/${escapePointer(key)}`, `is not an allowed name (${err.message})`);
  }
  return new ConfigError(pointerOf(err) || '/', reasonOf(err));
}

/** `loopback`, `lan`, or an IPv4/IPv6 address the gateway can listen on. */
export function isBindValue(bind: string): boolean {
  return bind === 'loopback' || bind === 'lan' || isIP(bind) !== 0;
}

/** Validate a parsed config.json against the kernel schema; throws ConfigError naming the JSON path. */
export function validateConfig(value: unknown): void {
  if (!validateConfigShape(value)) throw describe(validateConfigShape.errors!);
  // The schema's pattern keeps the characters of an address; whether they make one is isIP's to say.
  const bind = (value as { gateway?: { bind?: string } }).gateway?.bind;
  if (bind !== undefined && !isBindValue(bind)) throw new ConfigError('/gateway/bind', `"${bind}" is not loopback, lan or an IP address`);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep merge where the user's values win; arrays are replaced, not concatenated. */
export function mergeDefaults<T>(defaults: T, user: unknown): T {
  if (!isPlainObject(defaults) || !isPlainObject(user)) return (user === undefined ? defaults : user) as T;
  const out: Record<string, unknown> = { ...defaults };
  for (const [k, v] of Object.entries(user)) out[k] = k in out ? mergeDefaults(out[k], v) : v;
  return out as T;
}

export interface LoadedConfig {
  config: Config;
  /** The file as written by the user (without defaults), or {} when there is none. */
  raw: Record<string, unknown>;
  exists: boolean;
}

export function parseConfigText(text: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError('', `not valid JSON (${(err as Error).message.replace(/\s+/g, ' ')})`);
  }
  if (!isPlainObject(parsed)) throw new ConfigError('/', 'must be a JSON object');
  validateConfig(parsed);
  return parsed;
}

export function loadConfig(path: string): LoadedConfig {
  if (!existsSync(path)) return { config: defaultConfig(), raw: {}, exists: false };
  const raw = parseConfigText(readFileSync(path, 'utf8'));
  return { config: mergeDefaults(defaultConfig(), raw), raw, exists: true };
}

export function saveConfig(path: string, raw: Record<string, unknown>): void {
  validateConfig(raw);
  writeFileAtomic(path, JSON.stringify(raw, null, 2) + '\n', 0o600);
}

/** "/a/b/0" or "a.b.0" → ["a","b","0"] */
export function splitPath(path: string): string[] {
  const trimmed = path.startsWith('/') ? path.slice(1) : path;
  if (trimmed === '') return [];
  const parts = path.startsWith('/') ? trimmed.split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~')) : trimmed.split('.');
  for (const p of parts) {
    if (p === '__proto__' || p === 'constructor' || p === 'prototype') throw new ConfigError(path, 'forbidden key');
  }
  return parts;
}

export function getPath(value: unknown, parts: string[]): unknown {
  let cur = value;
  for (const p of parts) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  return cur;
}

/**
 * A copy of `root` with `value` set at `parts` (intermediate objects created).
 * Arrays are stepped into by index (`agents.list.1.maxSteps`); an index may be
 * one past the end to append, and unsetting an element removes it.
 */
export function setPath(root: Record<string, unknown>, parts: string[], value: unknown): Record<string, unknown> {
  if (parts.length === 0) throw new ConfigError('', 'cannot replace the whole config');
  const copy = structuredClone(root);
  let cur: Record<string, unknown> | unknown[] = copy;
  const indexIn = (arr: unknown[], p: string, i: number): number => {
    const n = /^(0|[1-9]\d*)$/.test(p) ? Number(p) : -1;
    if (n < 0 || n > arr.length) throw new ConfigError('/' + parts.slice(0, i).join('/'), `${p} is not an index of this list (0..${arr.length})`);
    return n;
  };
  for (const [i, p] of parts.slice(0, -1).entries()) {
    const holder = cur as Record<string | number, unknown>;
    const k = Array.isArray(cur) ? indexIn(cur, p, i) : p;
    if (!isPlainObject(holder[k]) && !Array.isArray(holder[k])) holder[k] = {};
    cur = holder[k] as Record<string, unknown> | unknown[];
  }
  const last = parts[parts.length - 1];
  if (Array.isArray(cur)) {
    const n = indexIn(cur, last, parts.length - 1);
    if (value === undefined) cur.splice(n, 1);
    else cur[n] = value;
  } else if (value === undefined) delete cur[last];
  else cur[last] = value;
  return copy;
}

/** Resolve `"${NAME}"` environment references; `{"secret": ...}` is left for the secrets store. */
export function resolveEnvRef(value: unknown, env: NodeJS.ProcessEnv = process.env): unknown {
  const name = envRefName(value);
  return name ? env[name] : value;
}

/** Agent settings = defaults overlaid with the agent's own entry. */
export function agentSettings(config: Config, agentId: string): AgentSettings & { id: string } {
  const own = config.agents.list.find((a) => a.id === agentId);
  return { ...mergeDefaults(config.agents.defaults, own ?? {}), id: agentId };
}
