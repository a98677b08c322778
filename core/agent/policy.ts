// The agent's tool policy, one checkpoint: may this agent call this tool, and does
// the call need the owner's approval? Deny always wins over allow and profiles.
import type { ToolPolicy } from '../config/config.ts';

/**
 * Profiles name a starting set of tools (OpenClaw's profiles); `allow` narrows it
 * further and `deny` removes from it. Names are matched as globs (`files.*`).
 */
export const PROFILES: Record<NonNullable<ToolPolicy['profile']>, string[]> = {
  minimal: ['session_status', 'skill_read'],
  messaging: ['message', 'message.*', 'sessions.*', 'session_status', 'skill_read'],
  coding: ['files.*', 'exec', 'process', 'web.*', 'memory.*', 'sessions.*', 'session_status', 'skill_read', 'image'],
  full: ['*'],
};

const cache = new Map<string, RegExp>();
function glob(pattern: string): RegExp {
  let re = cache.get(pattern);
  if (!re) {
    re = new RegExp('^' + pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$');
    cache.set(pattern, re);
  }
  return re;
}

// Tool names on the wire are [A-Za-z0-9_-] only (`files_write`), while config and
// OpenClaw habit write groups with dots (`files.write`, `files.*`): both spell the same name.
const normal = (s: string): string => s.replace(/\./g, '_');
const matchesAny = (patterns: readonly string[] | undefined, name: string): boolean => (patterns ?? []).some((p) => glob(normal(p)).test(normal(name)));

export type ToolDecision = { allowed: true; approval: boolean } | { allowed: false; reason: string };

export function decideTool(policy: ToolPolicy | undefined, name: string): ToolDecision {
  const p = policy ?? {};
  if (matchesAny(p.deny, name)) return { allowed: false, reason: `tool "${name}" is denied by this agent's tool policy` };
  if (p.profile && !matchesAny(PROFILES[p.profile], name)) {
    return { allowed: false, reason: `tool "${name}" is not in the "${p.profile}" tool profile` };
  }
  if (!matchesAny(p.allow ?? ['*'], name)) return { allowed: false, reason: `tool "${name}" is not allowed by this agent's tool policy` };
  return { allowed: true, approval: matchesAny(p.requireApproval, name) };
}
