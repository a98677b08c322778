// The parts of config.json a plugin defines — `plugins.<id>.config`, and for a
// channel plugin the keys of `channels.<id>` beyond the router's — are checked
// against the plugin's manifest schema whenever config.json is (config.md: at
// start, on every change, by `config validate`), and refused with their JSON
// path, as the kernel's own keys are. Only plugins that verified count: a
// schema is compiled only from a signed manifest.
import { ConfigError } from '../config/config.ts';
import { escapePointer } from '../schema.ts';
import { pluginConfigFor } from './config-grants.ts';
import { pluginConfigProblem, type Manifest } from './manifest.ts';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => !!v && typeof v === 'object' && !Array.isArray(v);

/** Throws ConfigError at the first plugin-defined key of `raw` that its plugin's schema refuses. */
export function checkPluginConfig(raw: Obj, manifests: Iterable<Manifest>): void {
  const plugins = isObj(raw.plugins) ? raw.plugins : {};
  const channels = isObj(raw.channels) ? raw.channels : {};
  for (const m of manifests) {
    const own = isObj(plugins[m.id]) ? (plugins[m.id] as Obj) : {};
    const channel = m.kind === 'channel' && isObj(channels[m.id]) ? (channels[m.id] as Obj) : undefined;
    // A switched-off plugin or channel may hold a half-written config: nothing reads it.
    if (own.enabled === false || channel?.enabled === false) continue;
    const plugin = isObj(own.config) ? own.config : undefined;
    if (!plugin && !channel) continue;
    const problem = pluginConfigProblem(m, pluginConfigFor(m, { plugin, channel }));
    if (!problem) continue;
    const key = problem.pointer.split('/')[1]?.replace(/~1/g, '/').replace(/~0/g, '~');
    const inChannel = channel !== undefined && (key === undefined || Object.hasOwn(channel, key) || !Object.hasOwn(plugin ?? {}, key));
    const base = inChannel ? `/channels/${escapePointer(m.id)}` : `/plugins/${escapePointer(m.id)}/config`;
    throw new ConfigError(base + problem.pointer, `${problem.reason} (plugin ${m.id}'s config schema)`);
  }
}
