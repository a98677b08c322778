import type { Timers } from '../timers.ts';
import type { Logger } from '../log/logger.ts';
import type { RunTurn, Deliver } from './scheduler.ts';

// The heartbeat: every N minutes (agents.defaults.heartbeat.everyMinutes,
// default 30; null turns it off) the agent gets a turn with the workspace's
// HEARTBEAT.md checklist. As in OpenClaw, a reply that is the token
// HEARTBEAT_OK (alone, or with at most ACK_MAX_CHARS of other text around it)
// means "nothing needs attention" and is swallowed, so heartbeats never spam a
// channel. A checklist with no actionable lines skips the turn entirely.

export const HEARTBEAT_OK = 'HEARTBEAT_OK';
export const ACK_MAX_CHARS = 300;
export const DEFAULT_EVERY_MINUTES = 30;

export function heartbeatPrompt(checklist: string): string {
  return [
    'Heartbeat. Go through this checklist from HEARTBEAT.md in your workspace. Do not repeat tasks from earlier heartbeats that are already done.',
    `If nothing needs the user's attention, reply with exactly ${HEARTBEAT_OK} and nothing else.`,
    '',
    checklist.trim(),
  ].join('\n');
}

/** True when the checklist has nothing but blank lines, headings, empty list items and HTML comments. */
export function checklistIsEmpty(text: string | null): boolean {
  if (text === null) return true;
  const body = text.replace(/<!--[\s\S]*?-->/g, '');
  return body.split('\n').every((l) => /^\s*(#+(\s.*)?|[-*+]\s*(\[[ xX]?\])?\s*)?$/.test(l));
}

/** True when the reply is the "nothing to do" acknowledgement. */
export function isHeartbeatAck(reply: string): boolean {
  const t = reply.trim();
  if (t === '') return true;
  const stripped = t.replace(/[*`~]/g, '').trim(); // markdown emphasis around the token
  if (!stripped.startsWith(HEARTBEAT_OK) && !stripped.endsWith(HEARTBEAT_OK)) return false;
  const rest = stripped.startsWith(HEARTBEAT_OK) ? stripped.slice(HEARTBEAT_OK.length) : stripped.slice(0, -HEARTBEAT_OK.length);
  return rest.trim().length <= ACK_MAX_CHARS;
}

export interface HeartbeatDeps {
  timers: Timers;
  runTurn: RunTurn;
  deliver: Deliver;
  /** HEARTBEAT.md of the agent's workspace, or null when missing. */
  readChecklist: () => string | null | Promise<string | null>;
  /** Read on every beat, so a config change takes effect without a restart. */
  settings: () => { everyMinutes?: number | null; deliver?: string | null };
  agentId?: string;
  sessionKey?: string;
  log?: Logger;
}

export type BeatOutcome =
  | { ran: false; reason: 'empty-checklist' | 'busy' }
  | { ran: true; delivered: boolean; text: string; error?: string };

export interface Heartbeat {
  beat(): Promise<BeatOutcome>;
  start(): void;
  stop(): Promise<void>;
}

export function createHeartbeat(deps: HeartbeatDeps): Heartbeat {
  const agentId = deps.agentId ?? 'main';
  const sessionKey = deps.sessionKey ?? `heartbeat:${agentId}`;
  let cancel: (() => void) | null = null;
  let current: Promise<BeatOutcome> | null = null;
  let running = false;

  async function beatOnce(): Promise<BeatOutcome> {
    const checklist = await deps.readChecklist();
    if (checklistIsEmpty(checklist)) return { ran: false, reason: 'empty-checklist' };
    try {
      const { text } = await deps.runTurn({ agentId, sessionKey, message: heartbeatPrompt(checklist!) });
      if (isHeartbeatAck(text)) return { ran: true, delivered: false, text };
      const target = deps.settings().deliver;
      if (!target) {
        deps.log?.info('heartbeat reply has no delivery target', { agentId });
        return { ran: true, delivered: false, text };
      }
      await deps.deliver(target, text);
      return { ran: true, delivered: true, text };
    } catch (err) {
      const error = (err as Error)?.message ?? String(err);
      deps.log?.warn('heartbeat failed', { agentId, error });
      return { ran: true, delivered: false, text: '', error };
    }
  }

  function beat(): Promise<BeatOutcome> {
    if (current) return Promise.resolve({ ran: false, reason: 'busy' });
    current = beatOnce().finally(() => (current = null));
    return current;
  }

  function arm(): void {
    cancel?.();
    cancel = null;
    if (!running) return;
    const configured = deps.settings().everyMinutes;
    const every = configured === undefined ? DEFAULT_EVERY_MINUTES : configured;
    // Off (null): look again in a minute, so turning it on in config needs no restart.
    const ms = every === null ? 60_000 : every * 60_000;
    cancel = deps.timers.setTimeout(() => {
      cancel = null;
      const go = every === null ? Promise.resolve() : beat().then(() => undefined);
      void go.finally(arm);
    }, ms);
  }

  return {
    beat,
    start() {
      running = true;
      arm();
    },
    async stop() {
      running = false;
      cancel?.();
      cancel = null;
      if (current) await current;
    },
  };
}
