import type { Config } from '../config/config.ts';
import { agentOfSessionKey, sessionKeyFor } from '../sessions/session-key.ts';
import { groupSettings } from './access.ts';
import { resolveAgent } from './bindings.ts';

// Where an agent may send a message on its own initiative (the `message` tool).
// The policy: the channel must be configured and enabled, and the target must be
// someone the agent could already hear from — and who is routed to this agent:
//   - a direct peer that may DM the agent: listed in allowFrom (not "*"), or
//     approved by pairing; under dmPolicy "open" only a peer that is listed or paired too;
//   - a group listed under `groups` (not the "*" entry) with groupPolicy not disabled;
//   - or any target named as a `deliver` destination in config (hooks, heartbeats).
// The binding for the target must resolve to the calling agent, so one agent
// cannot write into conversations that belong to another. DMs never open to
// strangers: spam is the failure this guards against.

export interface MessageTarget {
  channel: string;
  account?: string;
  chatType: 'direct' | 'group';
  chatId: string;
}

export type PolicyVerdict = { ok: true } | { ok: false; reason: string };

function deliverTargets(config: Config): Set<string> {
  const out = new Set<string>();
  for (const h of Object.values(config.hooks)) if (h.deliver) out.add(h.deliver);
  for (const a of [config.agents.defaults, ...config.agents.list]) if (a.heartbeat?.deliver) out.add(a.heartbeat.deliver);
  return out;
}

export function mayMessage(config: Config, isPaired: (channel: string, peer: string) => boolean, sessionKey: string, target: MessageTarget): PolicyVerdict {
  const agentId = agentOfSessionKey(sessionKey);
  if (agentId === null) return { ok: false, reason: 'the calling session is not an agent session' };
  const channel = Object.hasOwn(config.channels, target.channel) ? config.channels[target.channel] : undefined;
  if (!channel) return { ok: false, reason: `channel ${target.channel} is not configured` };
  if (channel.enabled === false) return { ok: false, reason: `channel ${target.channel} is disabled` };
  if (resolveAgent(config, target) !== agentId) return { ok: false, reason: `${target.channel}:${target.chatId} is bound to another agent` };
  if (deliverTargets(config).has(`${target.channel}:${target.chatId}`)) return { ok: true };
  // The conversation this session already is: replying in place is always fine.
  if (sessionKeyFor({ agentId, ...target }, config.session.dmScope) === sessionKey && config.session.dmScope !== 'main') return { ok: true };
  if (target.chatType === 'direct') {
    if (channel.dmPolicy === 'disabled') return { ok: false, reason: `direct messages are disabled on ${target.channel}` };
    const explicitly = (channel.allowFrom ?? []).includes(target.chatId);
    if (explicitly || isPaired(target.channel, target.chatId)) return { ok: true };
    return { ok: false, reason: `${target.chatId} is not in allowFrom and not paired on ${target.channel}` };
  }
  if (channel.groupPolicy === 'disabled') return { ok: false, reason: `groups are disabled on ${target.channel}` };
  const own = channel.groups && Object.hasOwn(channel.groups, target.chatId);
  if (!own || groupSettings(channel, target.chatId)?.enabled === false) return { ok: false, reason: `group ${target.chatId} is not listed under channels.${target.channel}.groups` };
  return { ok: true };
}
