// What the user's own config adds to a plugin: the config object the plugin sees
// (`carapace.config`) and the network grants that config implies. Pointing a
// channel at a server (`channels.<id>.apiBaseUrl`, or an endpoint's host/port) or
// a provider at an endpoint (`providers.<id>.baseUrl`) is the user's grant for
// that host:port — loopback and private addresses included — and the secrets the
// plugin may send to its default hosts may go there too; except for a provider,
// whose one credential is what `providers.<id>.apiKey` names: that key goes to
// that endpoint and no other, and the plugin's default key (OPENAI_API_KEY) does
// not follow it to a DeepSeek or an Ollama. Which config fields are
// endpoints is declared by the manifest's config schema, so the kernel knows no
// channel by name:
//   - `apiBaseUrl` / `baseUrl` at the top level (config.md), and any string
//     property marked `"x-carapace-endpoint": "url"`, are URLs;
//   - an object (or the root) marked `"x-carapace-endpoint": {"tlsPort", "plainPort",
//     "tlsDefault", "secrets"}` is an endpoint `{host, port?, tls?}`, its port
//     defaulting by `tls`; `secrets` names declared secrets meant for that host.

import { isIP } from 'node:net';
import type { Manifest } from './manifest.ts';
import type { ProviderConfig } from '../config/config.ts';
import { providerPluginConfig } from '../agent/direct-models.ts';

type Obj = Record<string, unknown>;

export interface ConfigSections {
  /** `plugins.<id>.config` */
  plugin?: Obj;
  /** `channels.<id>` (channel plugins) */
  channel?: Obj;
  /** `providers.<id>` (provider plugins) */
  provider?: ProviderConfig;
}

export interface DerivedGrant {
  /** Permission strings (permissions.ts forms) to add to the plugin's grant. */
  permissions: string[];
  /** host:port entries the user configured: private addresses allowed for these. */
  configured: string[];
  /** Where each came from, for the audit row. */
  from: string[];
}

const isObj = (v: unknown): v is Obj => !!v && typeof v === 'object' && !Array.isArray(v);
// The router's keys in `channels.<id>` (config.md): the plugin gets them only if its schema can take them.
const ROUTER_KEYS = ['enabled', 'dmPolicy', 'allowFrom', 'groupPolicy', 'groups', 'requireMention'];

function withoutNulls(o: Obj): Obj {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null && v !== undefined));
}

/** The config object for a plugin, before validation against its manifest schema. */
export function pluginConfigFor(m: Manifest, s: ConfigSections): Obj {
  const schema = (m.config ?? {}) as Obj;
  const props = isObj(schema.properties) ? schema.properties : {};
  const closed = schema.additionalProperties === false;
  let out: Obj = { ...(s.plugin ?? {}) };
  if (m.kind === 'channel' && s.channel) {
    const ch = withoutNulls(s.channel);
    for (const k of ROUTER_KEYS) if (closed && !Object.hasOwn(props, k)) delete ch[k];
    out = { ...out, ...ch };
  }
  if (m.kind === 'provider' && s.provider) {
    // The endpoint and its key are the provider entry's alone: its null is "none",
    // never whatever `plugins.<id>.config` (shared by every endpoint) says.
    const { baseUrl, apiKeySecret, ...rest } = providerPluginConfig(s.provider);
    const mapped: Obj = { ...withoutNulls(rest), baseUrl, apiKeySecret };
    for (const k of Object.keys(mapped)) if (closed && !Object.hasOwn(props, k)) delete mapped[k];
    out = { ...out, ...mapped };
  }
  return out;
}

function hostPortOfUrl(raw: unknown): { host: string; port: number } | null {
  if (typeof raw !== 'string') return null;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return null;
  }
  const defaults: Record<string, number> = { 'http:': 80, 'https:': 443, 'ws:': 80, 'wss:': 443 };
  if (!(u.protocol in defaults)) return null;
  const host = u.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (!host) return null;
  return { host, port: Number(u.port || defaults[u.protocol]) };
}

const netEntry = (host: string, port: number) => `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;

interface EndpointSpec {
  tlsPort?: number;
  plainPort?: number;
  tlsDefault?: boolean;
  secrets?: string[];
}

/** Every endpoint the config names, with the path it was found at and the secrets meant for it. */
function endpoints(schema: Obj, config: Obj, path: string, top: boolean): { host: string; port: number; at: string; secrets: string[] }[] {
  const out: { host: string; port: number; at: string; secrets: string[] }[] = [];
  const mark = schema['x-carapace-endpoint'];
  if (isObj(mark) && typeof config.host === 'string' && config.host.trim()) {
    const spec = mark as EndpointSpec;
    const tls = typeof config.tls === 'boolean' ? config.tls : spec.tlsDefault === true;
    const port = typeof config.port === 'number' ? config.port : tls ? spec.tlsPort : spec.plainPort;
    if (typeof port === 'number' && Number.isInteger(port) && port > 0 && port < 65536) {
      out.push({ host: config.host.trim().replace(/^\[|\]$/g, '').toLowerCase(), port, at: `${path}.host`, secrets: Array.isArray(spec.secrets) ? spec.secrets.filter((x): x is string => typeof x === 'string') : [] });
    }
  }
  const props = isObj(schema.properties) ? schema.properties : {};
  for (const [k, v] of Object.entries(config)) {
    const sub = isObj(props[k]) ? props[k] : {};
    const isUrl = sub['x-carapace-endpoint'] === 'url' || (top && (k === 'apiBaseUrl' || k === 'baseUrl'));
    if (isUrl) {
      const hp = hostPortOfUrl(v);
      if (hp) out.push({ ...hp, at: `${path}.${k}`, secrets: [] });
    } else if (isObj(v) && isObj(props[k])) out.push(...endpoints(props[k] as Obj, v, `${path}.${k}`, false));
  }
  return out;
}

/**
 * The grants a plugin's validated config implies. `granted` is its effective
 * permission list (requested ∩ granted); `where` names the config section for the audit.
 */
export function deriveGrant(m: Manifest, config: Obj, granted: readonly string[], where: string): DerivedGrant {
  const schema = (m.config ?? {}) as Obj;
  const declared = m.permissions?.secrets ?? {};
  const defaultHosts = (m.permissions?.net ?? []).map((n) => n.slice(0, n.lastIndexOf(':')).toLowerCase());
  // Secrets the plugin already may send to one of its default hosts; none for a provider, whose credential is its config's (below).
  const forDefaultHosts = new Set<string>();
  if (m.kind !== 'provider') {
    for (const p of granted) {
      const mm = /^secret:([^@]+)@(.+)$/.exec(p);
      if (mm && defaultHosts.includes(mm[2].toLowerCase())) forDefaultHosts.add(mm[1]);
    }
  }
  const perms = new Set<string>();
  const configured = new Set<string>();
  const from: string[] = [];
  for (const e of endpoints(schema, config, where, true)) {
    const entry = netEntry(e.host, e.port);
    perms.add(`net:${entry}`);
    configured.add(entry);
    from.push(`${e.at} -> ${entry}`);
    const host = isIP(e.host) === 6 ? `[${e.host}]` : e.host;
    for (const name of new Set([...forDefaultHosts, ...e.secrets])) {
      if (Object.hasOwn(declared, name)) perms.add(`secret:${name}@${host}`);
    }
  }
  // A provider's configured credential is the user's pairing of that secret with its endpoint: the baseUrl, else the plugin's default hosts.
  if (m.kind === 'provider' && typeof config.apiKeySecret === 'string' && /^[A-Z][A-Z0-9_]{0,63}$/.test(config.apiKeySecret)) {
    const name = config.apiKeySecret;
    const hosts = new Set(configured.size ? [...configured].map((c) => c.slice(0, c.lastIndexOf(':'))) : defaultHosts);
    for (const h of hosts) if (!h.startsWith('*')) perms.add(`secret:${name}@${h}`);
    if (hosts.size) from.push(`${where}.apiKey -> secret ${name}`);
  }
  return { permissions: [...perms].filter((p) => !granted.includes(p)), configured: [...configured], from };
}
