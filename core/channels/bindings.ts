import type { Config } from '../config/config.ts';

// Which agent answers a conversation: config `bindings`, most specific match
// wins (a peer or group beats an account, which beats a channel, which beats
// "*"); among equally specific matches the first listed wins.

export interface RouteTarget {
  channel: string;
  account?: string;
  chatType: 'direct' | 'group' | 'thread';
  /** The peer for direct chats, the group id otherwise. */
  chatId: string;
}

type Binding = Config['bindings'][number];

function specificity(match: Binding['match'], target: RouteTarget): number {
  let score = 0;
  if (match.channel !== undefined && match.channel !== '*') {
    if (match.channel !== target.channel) return -1;
    score += 1;
  }
  if (match.account !== undefined && match.account !== '*') {
    if (match.account !== (target.account ?? 'default')) return -1;
    score += 2;
  }
  if (match.peer !== undefined) {
    if (target.chatType !== 'direct' || (match.peer !== '*' && match.peer !== target.chatId)) return -1;
    if (match.peer !== '*') score += 4;
  }
  if (match.group !== undefined) {
    if (target.chatType === 'direct' || (match.group !== '*' && match.group !== target.chatId)) return -1;
    if (match.group !== '*') score += 4;
  }
  return score;
}

/** The bound agent; with no matching binding, the first configured agent (or "main"). */
export function resolveAgent(config: Pick<Config, 'bindings' | 'agents'>, target: RouteTarget): string {
  let best: Binding | undefined;
  let bestScore = -1;
  for (const b of config.bindings) {
    const s = specificity(b.match, target);
    if (s > bestScore) {
      best = b;
      bestScore = s;
    }
  }
  return best?.agentId ?? config.agents.list[0]?.id ?? 'main';
}
