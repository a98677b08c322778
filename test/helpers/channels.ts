import type { TestContext } from 'node:test';
import { ensureHome } from '../../core/home.ts';
import { openDb, type Db } from '../../core/store/db.ts';
import { createAuditLog, type AuditLog } from '../../core/audit.ts';
import { defaultConfig, mergeDefaults, validateConfig, type Config } from '../../core/config/config.ts';
import { silentLogger } from '../../core/log/logger.ts';
import { createInbox, type Inbox } from '../../core/channels/inbox.ts';
import { createPairingStore, type PairingStore } from '../../core/channels/pairing.ts';
import { createRouter, type Dispatch, type Router, type PairingRequestedEvent } from '../../core/channels/router.ts';
import type { InboundMessage } from '../../core/plugin-api.ts';
import { tempHome, type TempHome } from './home.ts';

/** A clock the test moves by hand. */
export function fakeClock(start = Date.UTC(2030, 0, 1)): { now(): number; advance(ms: number): void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

/** A config.json as the user would write it, validated and merged over the defaults like the gateway does. */
export function configOf(raw: Record<string, unknown>): Config {
  validateConfig(raw);
  return mergeDefaults(defaultConfig(), raw);
}

export interface RouterRig {
  home: TempHome;
  db: Db;
  audit: AuditLog;
  clock: ReturnType<typeof fakeClock>;
  inbox: Inbox;
  pairing: PairingStore;
  router: Router;
  dispatched: Dispatch[];
  replies: { chatId: string; text: string; idempotencyKey: string }[];
  pairingEvents: PairingRequestedEvent[];
  setConfig(raw: Record<string, unknown>): void;
  /** Make the next dispatches throw (the agent side is down). */
  failDispatch(on: boolean): void;
}

/** The router over a real SQLite file in a temp home, recording what it dispatches and replies. */
export function routerRig(t: TestContext, raw: Record<string, unknown> = {}, opts: { realClock?: boolean } = {}): RouterRig {
  const home = tempHome('channels');
  ensureHome(home.paths);
  const db = openDb(home.paths.db);
  t.after(() => {
    db.close();
    home.cleanup();
  });
  const clock = opts.realClock ? { now: () => Date.now(), advance: () => { throw new Error('real clock'); } } : fakeClock();
  const audit = createAuditLog(db, { now: clock.now });
  const inbox = createInbox(db, clock);
  const pairing = createPairingStore(db, { clock, audit });
  let config = configOf(raw);
  let failing = false;
  const rig: RouterRig = {
    home,
    db,
    audit,
    clock,
    inbox,
    pairing,
    dispatched: [],
    replies: [],
    pairingEvents: [],
    setConfig: (r) => void (config = configOf(r)),
    failDispatch: (on) => void (failing = on),
    router: undefined as unknown as Router,
  };
  rig.router = createRouter({
    config: () => config,
    inbox,
    pairing,
    audit,
    log: silentLogger,
    dispatch: (d) => {
      if (failing) throw new Error('agent unavailable');
      rig.dispatched.push(d);
    },
    reply: (out) => rig.replies.push(out),
    onPairingRequested: (e) => rig.pairingEvents.push(e),
  });
  return rig;
}

let seq = 0;
export function dm(channel: string, sender: string, text = 'hello', extra: Partial<InboundMessage> = {}): InboundMessage {
  return { channel, chatId: sender, chatType: 'direct', sender: { id: sender, name: `user ${sender}` }, text, platformMessageId: `p${++seq}`, ...extra };
}

export function groupMsg(channel: string, group: string, sender: string, text: string, extra: Partial<InboundMessage> = {}): InboundMessage {
  return { channel, chatId: group, chatType: 'group', sender: { id: sender }, text, platformMessageId: `g${++seq}`, ...extra };
}
