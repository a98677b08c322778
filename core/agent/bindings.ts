// Which agent handles a message, and where each agent's workspace is. Bindings
// are tried most specific first (peer or group, then account, then channel), and
// in config order among equals; no match means the default (first listed) agent.
import { isAbsolute, join } from 'node:path';
import type { Config } from '../config/config.ts';
import type { HomePaths } from '../home.ts';

export interface Route {
  channel: string;
  account?: string;
  /** The sender, for direct chats. */
  peer?: string;
  /** The group or channel id, for group chats. */
  group?: string;
}

export function defaultAgentId(config: Config): string {
  return config.agents.list[0]?.id ?? 'main';
}

const fits = (pattern: string | undefined, value: string | undefined): boolean =>
  pattern === undefined || pattern === '*' || (value !== undefined && pattern === value);

export function resolveAgentId(config: Config, route: Route): string {
  const known = new Set(config.agents.list.map((a) => a.id));
  const ranked = config.bindings
    .map((b, order) => {
      const m = b.match;
      const score = (m.peer && m.peer !== '*' ? 8 : 0) + (m.group && m.group !== '*' ? 8 : 0) + (m.account && m.account !== '*' ? 4 : 0) + (m.channel && m.channel !== '*' ? 2 : 0);
      return { b, order, score };
    })
    .sort((x, y) => y.score - x.score || x.order - y.order);
  for (const { b } of ranked) {
    const m = b.match;
    if (!known.has(b.agentId)) continue;
    if (fits(m.channel, route.channel) && fits(m.account, route.account) && fits(m.peer, route.peer) && fits(m.group, route.group)) return b.agentId;
  }
  return defaultAgentId(config);
}

/** The default agent uses `workspace/`; others `agents/<id>/workspace/` unless configured. */
export function agentWorkspace(paths: HomePaths, config: Config, agentId: string, configured?: string): string {
  if (configured) return isAbsolute(configured) ? configured : join(paths.root, configured);
  return agentId === defaultAgentId(config) ? paths.workspace : join(paths.root, 'agents', agentId, 'workspace');
}
