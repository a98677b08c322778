// Paired devices, pending pairing requests and one-time invites (protocol.md
// "Pairing a new device"). The only writer of the tables devices,
// device_pairing_requests and device_invites; every change is audited here.
import { randomBytes, randomUUID, createHash, timingSafeEqual } from 'node:crypto';
import { CarapaceError } from '../errors.ts';
import type { Db } from '../store/db.ts';
import type { AuditLog } from '../audit.ts';
import type { Clock } from '../clock.ts';
import type { KeyPair } from '../identity/keys.ts';

export type Role = 'operator' | 'node';

export const OPERATOR_SCOPES = ['operator.read', 'operator.write', 'operator.pairing', 'operator.admin'] as const;
export const NODE_SCOPES = ['node.invoke'] as const;

export const PAIRING_TTL_MS = 10 * 60_000;
export const INVITE_TTL_MS = 10 * 60_000;
export const MAX_PENDING = 16;
export const INVITE_MAX_FAILURES = 5;

export function scopesForRole(role: Role): readonly string[] {
  return role === 'operator' ? OPERATOR_SCOPES : NODE_SCOPES;
}

/**
 * Does a holder of `held` have `scope`? `operator.admin` implies every other
 * operator scope (an admin can change the config that grants them anyway);
 * nothing else implies anything.
 */
export function hasScope(held: readonly string[], scope: string): boolean {
  return held.includes(scope) || (scope.startsWith('operator.') && held.includes('operator.admin'));
}

export interface DeviceRecord {
  id: string;
  publicKey: string;
  role: Role;
  scopes: string[];
  name: string | null;
  platform: string | null;
  pairedAt: number;
  pairedBy: string;
  revokedAt: number | null;
  lastSeenAt: number | null;
  owner: boolean;
}

export interface PairingRequest {
  requestId: string;
  code: string;
  deviceId: string;
  publicKey: string;
  role: Role;
  scopes: string[];
  client: { name: string; version: string; platform: string };
  createdAt: number;
  expiresAt: number;
}

export interface Invite {
  id: string;
  code: string;
  role: Role;
  scopes: string[];
  expiresAt: number;
}

export interface DeviceStore {
  /** The gateway's record of a device (the owner key is always paired, with every operator scope). */
  get(deviceId: string): DeviceRecord | null;
  list(): DeviceRecord[];
  touch(deviceId: string): void;
  /** A correctly signed connect from an unknown device: its open request (one per device), created if needed. */
  requestPairing(req: { deviceId: string; publicKey: string; role: Role; scopes: string[]; client: PairingRequest['client'] }): PairingRequest & { fresh: boolean };
  pending(): PairingRequest[];
  approve(code: string, grant: { role?: Role; scopes?: string[] }, by: Approver): DeviceRecord;
  reject(code: string, by: Approver): PairingRequest;
  invite(grant: { role?: Role; scopes?: string[]; ttlMs?: number }, by: Approver): Invite;
  /** Pair a device with a one-time invite code; null when the code is wrong (every live invite counts a failure). */
  redeemInvite(code: string, device: { deviceId: string; publicKey: string; client: PairingRequest['client'] }): DeviceRecord | null;
  revoke(deviceId: string, by: Approver): DeviceRecord;
}

/** Who is acting: a caller can grant no scope it does not hold itself. */
export interface Approver {
  actor: string;
  scopes: readonly string[];
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** 8 Crockford base32 characters (40 random bits), shown as XXXX-XXXX. */
export function newCode(): string {
  const bytes = randomBytes(5);
  let bits = 0n;
  for (const b of bytes) bits = (bits << 8n) | BigInt(b);
  let out = '';
  for (let i = 7; i >= 0; i--) out += CROCKFORD[Number((bits >> BigInt(i * 5)) & 31n)];
  return `${out.slice(0, 4)}-${out.slice(4)}`;
}

/** What a person typed → the canonical XXXX-XXXX, or null (Crockford: I/L read as 1, O as 0, case and dashes ignored). */
export function normalizeCode(text: unknown): string | null {
  if (typeof text !== 'string' || text.length > 16) return null;
  const s = text.toUpperCase().replace(/[-\s]/g, '').replace(/[IL]/g, '1').replace(/O/g, '0');
  if (s.length !== 8 || [...s].some((c) => !CROCKFORD.includes(c))) return null;
  return `${s.slice(0, 4)}-${s.slice(4)}`;
}

function hashCode(code: string): string {
  return createHash('sha256').update(`carapace-invite-v1\n${code}`).digest('hex');
}

function checkGrant(role: Role, scopes: string[], by: Approver): void {
  const allowed = scopesForRole(role);
  const bad = scopes.find((s) => !allowed.includes(s));
  if (bad) throw new CarapaceError('INVALID_REQUEST', `scope ${bad} does not belong to role ${role}`, { pointer: '/params/scopes', scope: bad });
  const over = scopes.find((s) => !(role === 'node' ? by.scopes.includes('operator.admin') || by.scopes.includes(s) : hasScope(by.scopes, s)));
  if (over) throw new CarapaceError('FORBIDDEN', `cannot grant ${over}: you do not hold it`, { missingScope: role === 'node' ? 'operator.admin' : over });
}

interface DeviceRow {
  id: string;
  public_key: string;
  role: Role;
  scopes: string;
  name: string | null;
  platform: string | null;
  paired_at: number;
  paired_by: string;
  revoked_at: number | null;
  last_seen_at: number | null;
}

interface RequestRow {
  id: string;
  code: string;
  device_id: string;
  public_key: string;
  role: Role;
  scopes: string;
  client: string;
  created_at: number;
  expires_at: number;
}

function toDevice(r: DeviceRow): DeviceRecord {
  return {
    id: r.id,
    publicKey: r.public_key,
    role: r.role,
    scopes: JSON.parse(r.scopes) as string[],
    name: r.name,
    platform: r.platform,
    pairedAt: r.paired_at,
    pairedBy: r.paired_by,
    revokedAt: r.revoked_at,
    lastSeenAt: r.last_seen_at,
    owner: false,
  };
}

function toRequest(r: RequestRow): PairingRequest {
  return {
    requestId: r.id,
    code: r.code,
    deviceId: r.device_id,
    publicKey: r.public_key,
    role: r.role,
    scopes: JSON.parse(r.scopes) as string[],
    client: JSON.parse(r.client) as PairingRequest['client'],
    createdAt: r.created_at,
    expiresAt: r.expires_at,
  };
}

export function createDeviceStore(deps: { db: Db; audit: AuditLog; clock: Clock; owner: KeyPair; startedAt: number }): DeviceStore {
  const { db, audit, clock, owner } = deps;
  const q = {
    get: db.prepare('SELECT * FROM devices WHERE id = ?'),
    list: db.prepare('SELECT * FROM devices ORDER BY paired_at'),
    touch: db.prepare('UPDATE devices SET last_seen_at = ? WHERE id = ?'),
    upsert: db.prepare(`INSERT INTO devices (id, public_key, role, scopes, name, platform, paired_at, paired_by, revoked_at, revoked_by, last_seen_at)
      VALUES (@id, @publicKey, @role, @scopes, @name, @platform, @now, @by, NULL, NULL, NULL)
      ON CONFLICT(id) DO UPDATE SET role=@role, scopes=@scopes, name=@name, platform=@platform, paired_at=@now, paired_by=@by, revoked_at=NULL, revoked_by=NULL`),
    revoke: db.prepare('UPDATE devices SET revoked_at = ?, revoked_by = ? WHERE id = ?'),
    expire: db.prepare('DELETE FROM device_pairing_requests WHERE expires_at <= ?'),
    pending: db.prepare('SELECT * FROM device_pairing_requests ORDER BY created_at'),
    pendingCount: db.prepare('SELECT count(*) AS n, min(expires_at) AS soonest FROM device_pairing_requests'),
    requestByDevice: db.prepare('SELECT * FROM device_pairing_requests WHERE device_id = ?'),
    requestByCode: db.prepare('SELECT * FROM device_pairing_requests WHERE code = ?'),
    insertRequest: db.prepare(`INSERT INTO device_pairing_requests (id, code, device_id, public_key, role, scopes, client, created_at, expires_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    deleteRequest: db.prepare('DELETE FROM device_pairing_requests WHERE id = ?'),
    insertInvite: db.prepare(`INSERT INTO device_invites (id, code_hash, role, scopes, created_at, created_by, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
    liveInvites: db.prepare('SELECT * FROM device_invites WHERE used_at IS NULL AND expires_at > ? AND failed_tries < ?'),
    useInvite: db.prepare('UPDATE device_invites SET used_at = ?, used_by = ? WHERE id = ? AND used_at IS NULL'),
    failInvites: db.prepare('UPDATE device_invites SET failed_tries = failed_tries + 1 WHERE used_at IS NULL AND expires_at > ? AND failed_tries < ?'),
  };

  const ownerRecord = (): DeviceRecord => ({
    id: owner.id,
    publicKey: owner.publicKeyB64,
    role: 'operator',
    scopes: [...OPERATOR_SCOPES],
    name: 'owner',
    platform: null,
    pairedAt: deps.startedAt,
    pairedBy: 'state-directory',
    revokedAt: null,
    lastSeenAt: null,
    owner: true,
  });

  function pair(d: { deviceId: string; publicKey: string; role: Role; scopes: string[]; client: PairingRequest['client'] }, by: string): DeviceRecord {
    q.upsert.run({ id: d.deviceId, publicKey: d.publicKey, role: d.role, scopes: JSON.stringify([...d.scopes].sort()), name: d.client.name, platform: d.client.platform, now: clock.now(), by });
    return toDevice(q.get.get(d.deviceId) as DeviceRow);
  }

  function findRequest(code: string): RequestRow {
    q.expire.run(clock.now());
    const norm = normalizeCode(code);
    const row = norm ? (q.requestByCode.get(norm) as RequestRow | undefined) : undefined;
    if (!row) throw new CarapaceError('NOT_FOUND', `no pending pairing request with code ${String(code).slice(0, 16)} (it may have expired)`);
    return row;
  }

  return {
    get(deviceId) {
      if (deviceId === owner.id) return ownerRecord();
      const r = q.get.get(deviceId) as DeviceRow | undefined;
      return r ? toDevice(r) : null;
    },
    list() {
      return [ownerRecord(), ...(q.list.all() as DeviceRow[]).map(toDevice)];
    },
    touch(deviceId) {
      if (deviceId !== owner.id) q.touch.run(clock.now(), deviceId);
    },
    requestPairing(req) {
      const now = clock.now();
      return db.transaction(() => {
        q.expire.run(now);
        const existing = q.requestByDevice.get(req.deviceId) as RequestRow | undefined;
        if (existing) return { ...toRequest(existing), fresh: false };
        const { n, soonest } = q.pendingCount.get() as { n: number; soonest: number | null };
        if (n >= MAX_PENDING) {
          throw new CarapaceError('RATE_LIMITED', `${MAX_PENDING} pairing requests are already waiting; approve or reject some first`, { retryAfterMs: Math.max(1000, (soonest ?? now) - now) });
        }
        const id = randomUUID();
        let code = newCode();
        while (q.requestByCode.get(code)) code = newCode();
        q.insertRequest.run(id, code, req.deviceId, req.publicKey, req.role, JSON.stringify(req.scopes), JSON.stringify(req.client), now, now + PAIRING_TTL_MS);
        audit.append({ actor: `device:${req.deviceId}`, action: 'device.pairing.requested', target: req.deviceId, data: { requestId: id, role: req.role, scopes: req.scopes, client: req.client } });
        return { ...toRequest(q.requestByDevice.get(req.deviceId) as RequestRow), fresh: true };
      }).immediate();
    },
    pending() {
      q.expire.run(clock.now());
      return (q.pending.all() as RequestRow[]).map(toRequest);
    },
    approve(code, grant, by) {
      return db.transaction(() => {
        const row = toRequest(findRequest(code));
        const role = grant.role ?? row.role;
        const scopes = grant.scopes ?? (grant.role && grant.role !== row.role ? [] : row.scopes);
        checkGrant(role, scopes, by);
        q.deleteRequest.run(row.requestId);
        const device = pair({ ...row, role, scopes }, by.actor);
        audit.append({ actor: by.actor, action: 'device.approve', target: row.deviceId, data: { requestId: row.requestId, role, scopes } });
        return device;
      }).immediate();
    },
    reject(code, by) {
      return db.transaction(() => {
        const row = toRequest(findRequest(code));
        q.deleteRequest.run(row.requestId);
        audit.append({ actor: by.actor, action: 'device.reject', target: row.deviceId, data: { requestId: row.requestId } });
        return row;
      }).immediate();
    },
    invite(grant, by) {
      const role = grant.role ?? 'operator';
      const scopes = grant.scopes ?? (role === 'operator' ? ['operator.read', 'operator.write'] : ['node.invoke']);
      checkGrant(role, scopes, by);
      const id = randomUUID();
      const code = newCode();
      const now = clock.now();
      const expiresAt = now + (grant.ttlMs ?? INVITE_TTL_MS);
      q.insertInvite.run(id, hashCode(code), role, JSON.stringify(scopes), now, by.actor, expiresAt);
      audit.append({ actor: by.actor, action: 'device.invite', target: id, data: { role, scopes, expiresAt } });
      return { id, code, role, scopes, expiresAt };
    },
    redeemInvite(code, device) {
      const now = clock.now();
      return db.transaction(() => {
        const norm = normalizeCode(code);
        const want = norm ? Buffer.from(hashCode(norm), 'hex') : null;
        const live = q.liveInvites.all(now, INVITE_MAX_FAILURES) as { id: string; code_hash: string; role: Role; scopes: string }[];
        const hit = want ? live.find((i) => timingSafeEqual(Buffer.from(i.code_hash, 'hex'), want)) : undefined;
        if (!hit) {
          // A wrong guess counts against every open invite, so guessing burns them all after a few tries.
          q.failInvites.run(now, INVITE_MAX_FAILURES);
          audit.append({ actor: `device:${device.deviceId}`, action: 'device.invite.failed', target: device.deviceId, data: { openInvites: live.length } });
          return null;
        }
        q.useInvite.run(now, device.deviceId, hit.id);
        const scopes = JSON.parse(hit.scopes) as string[];
        const rec = pair({ ...device, role: hit.role, scopes }, `invite:${hit.id}`);
        const pending = q.requestByDevice.get(device.deviceId) as RequestRow | undefined;
        if (pending) q.deleteRequest.run(pending.id);
        audit.append({ actor: `device:${device.deviceId}`, action: 'device.invite.redeemed', target: device.deviceId, data: { inviteId: hit.id, role: hit.role, scopes } });
        return rec;
      }).immediate();
    },
    revoke(deviceId, by) {
      if (deviceId === owner.id) throw new CarapaceError('CONFLICT', 'the owner key cannot be revoked; it is whoever holds the state directory');
      return db.transaction(() => {
        const r = q.get.get(deviceId) as DeviceRow | undefined;
        if (!r) throw new CarapaceError('NOT_FOUND', `no paired device ${deviceId.slice(0, 64)}`);
        if (r.revoked_at === null) {
          q.revoke.run(clock.now(), by.actor, deviceId);
          audit.append({ actor: by.actor, action: 'device.revoke', target: deviceId, data: { role: r.role } });
        }
        return toDevice(q.get.get(deviceId) as DeviceRow);
      }).immediate();
    },
  };
}
