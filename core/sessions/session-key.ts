// Session keys: which conversation a message belongs to. The shape follows
// OpenClaw's so that people moving over recognise them:
//   agent:<agentId>:main                                  dmScope "main" (all DMs share one session)
//   agent:<agentId>:dm:<peer>                             dmScope "per-peer"
//   agent:<agentId>:<channel>:dm:<peer>                   dmScope "per-channel-peer" (default)
//   agent:<agentId>:<channel>:<account>:dm:<peer>         dmScope "per-account-channel-peer"
//   agent:<agentId>:<channel>:group:<groupId>[:thread:<threadId>]
// Ids are escaped so a peer id can never forge another session's key.

export type DmScope = 'main' | 'per-peer' | 'per-channel-peer' | 'per-account-channel-peer';

export interface SessionKeyInput {
  agentId: string;
  channel: string;
  account?: string;
  chatType: 'direct' | 'group' | 'thread';
  /** The peer (sender) for direct chats, the group/channel id otherwise. */
  chatId: string;
  threadId?: string;
}

/** Percent-escape ':' and '%' (and control characters) so each segment stays one segment. */
export function escapeSegment(id: string): string {
  return id.replace(/[%:\u0000-\u001f]/g, (c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0').toUpperCase());
}

export function sessionKeyFor(input: SessionKeyInput, dmScope: DmScope): string {
  const agent = `agent:${escapeSegment(input.agentId)}`;
  const channel = escapeSegment(input.channel);
  const chat = escapeSegment(input.chatId);
  if (input.chatType === 'direct') {
    switch (dmScope) {
      case 'main':
        return `${agent}:main`;
      case 'per-peer':
        return `${agent}:dm:${chat}`;
      case 'per-channel-peer':
        return `${agent}:${channel}:dm:${chat}`;
      case 'per-account-channel-peer':
        return `${agent}:${channel}:${escapeSegment(input.account ?? 'default')}:dm:${chat}`;
    }
  }
  const group = `${agent}:${channel}:group:${chat}`;
  return input.threadId ? `${group}:thread:${escapeSegment(input.threadId)}` : group;
}

/** The agent a session key belongs to, or null if it is not a session key. */
export function agentOfSessionKey(key: string): string | null {
  const m = /^agent:([^:]+):/.exec(key);
  return m ? decodeURIComponent(m[1]) : null;
}

const SESSION_KEY = /^(agent:[^:\s]+:[^\s]+|hook:[a-z0-9][a-z0-9_-]{0,63}|cron:[^\s]+)$/;

/** Keys a client may name itself (chat.send, cron jobs, hooks): agent-scoped, hook or cron keys. */
export function isValidSessionKey(key: unknown): key is string {
  return typeof key === 'string' && key.length <= 512 && SESSION_KEY.test(key);
}
