import type { ChannelConfig } from '../config/config.ts';
import type { InboundMessage } from '../plugin-api.ts';

// Who may talk to the agent on a channel: a pure decision over the channel's
// config and the envelope. The pairing store is asked only through `isPaired`.
// Unset settings take the cautious default: DMs need pairing, groups need to be
// listed, and a group message needs a mention.

export type AccessDecision =
  | { verdict: 'allow' }
  | { verdict: 'pair' }
  | { verdict: 'refuse'; reason: RefusalReason };

export type RefusalReason =
  | 'channel-disabled'
  | 'dm-disabled'
  | 'not-allowlisted'
  | 'groups-disabled'
  | 'group-not-allowlisted'
  | 'group-disabled'
  | 'sender-not-allowed-in-group'
  | 'mention-required';

export interface GroupSettings {
  enabled?: boolean;
  requireMention?: boolean;
  allowFrom?: string[];
}

/** allowFrom entries are platform sender ids, or "*"; names and usernames can be changed by their owner, so they never grant access. */
export function listed(list: readonly string[] | undefined, senderId: string): boolean {
  return list !== undefined && (list.includes('*') || list.includes(senderId));
}

export function groupSettings(config: ChannelConfig, groupId: string): GroupSettings | undefined {
  const groups = config.groups ?? {};
  const own = groups[groupId] as GroupSettings | undefined;
  return own ?? (groups['*'] as GroupSettings | undefined);
}

export function decideAccess(config: ChannelConfig | undefined, msg: InboundMessage, isPaired: () => boolean): AccessDecision {
  const channel = config ?? {};
  if (channel.enabled === false) return { verdict: 'refuse', reason: 'channel-disabled' };

  if (msg.chatType === 'direct') {
    const policy = channel.dmPolicy ?? 'pairing';
    if (policy === 'disabled') return { verdict: 'refuse', reason: 'dm-disabled' };
    if (policy === 'open') return { verdict: 'allow' };
    if (listed(channel.allowFrom, msg.sender.id)) return { verdict: 'allow' };
    if (policy === 'allowlist') return { verdict: 'refuse', reason: 'not-allowlisted' };
    return isPaired() ? { verdict: 'allow' } : { verdict: 'pair' };
  }

  const policy = channel.groupPolicy ?? 'allowlist';
  if (policy === 'disabled') return { verdict: 'refuse', reason: 'groups-disabled' };
  const group = groupSettings(channel, msg.chatId);
  if (policy === 'allowlist' && group === undefined) return { verdict: 'refuse', reason: 'group-not-allowlisted' };
  if (group?.enabled === false) return { verdict: 'refuse', reason: 'group-disabled' };
  if (group?.allowFrom !== undefined && !listed(group.allowFrom, msg.sender.id)) {
    return { verdict: 'refuse', reason: 'sender-not-allowed-in-group' };
  }
  const requireMention = group?.requireMention ?? channel.requireMention ?? true;
  if (requireMention && msg.mentioned !== true) return { verdict: 'refuse', reason: 'mention-required' };
  return { verdict: 'allow' };
}
