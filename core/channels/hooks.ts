import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config/config.ts';
import type { Db } from '../store/db.ts';
import type { Clock } from '../clock.ts';
import type { Logger } from '../log/logger.ts';
import type { AuditLog } from '../audit.ts';
import type { Service } from '../kernel.ts';
import { CarapaceError, ERROR_CODES, toWireError } from '../errors.ts';
import { kernelAjv } from '../schema.ts';
import { resolveCredential, type SecretsSource } from '../secrets/source.ts';
import { isValidSessionKey } from '../sessions/session-key.ts';
import type { DispatchFn } from './router.ts';
import { resolveAgent } from './bindings.ts';

// Webhook ingress: `POST /hooks/<name>` (config `hooks.<name>`) starts an agent turn.
//
// Authentication, either:
//   Authorization: Bearer <secret>
//   X-Carapace-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>
//     optionally with X-Carapace-Timestamp: Unix time in ms (seconds accepted).
// Both compared in constant time. config.md fixes the MAC to the raw body and asks
// for nothing more, so a captured request could be sent again: a signed body is
// accepted once. Without a timestamp its signature is kept in hook_requests for
// good (the same text again needs another body: an `id`); with one, the request
// must be within ±5 min and its signature is remembered for that window. Senders
// that retry should send an `id`: a repeated id answers 200 with the first runId
// (ids are kept in hook_requests, which this module owns).
//
// Body: JSON `{"text": "...", "id": "<optional idempotency id>"}`, at most 64 KiB.
// Answers 202 {runId}; 401 wrong/missing auth (details.reason); 404 unknown hook;
// 400 bad body; 413 too large; 503 when the secret is unset or the agent side is down.

export const REPLAY_WINDOW_MS = 5 * 60 * 1000;
export const HOOK_BODY_LIMIT = 64 * 1024;

export interface HooksDeps {
  config: () => Config;
  db: Db;
  clock: Clock;
  log: Logger;
  audit: AuditLog;
  secrets: SecretsSource;
  dispatch: DispatchFn;
  env?: NodeJS.ProcessEnv;
}

const bodySchema = {
  type: 'object',
  properties: {
    text: { type: 'string', minLength: 1, maxLength: 32 * 1024 },
    id: { type: 'string', minLength: 1, maxLength: 128, pattern: '^[\\x21-\\x7e]+$' },
  },
  required: ['text'],
  additionalProperties: false,
} as const;
const checkBody = kernelAjv.compile<{ text: string; id?: string }>(bodySchema);

const sha = (s: string | Buffer): Buffer => createHash('sha256').update(s).digest();

/** Constant-time string equality that does not leak the length either. */
function sameSecret(given: string, expected: string): boolean {
  return timingSafeEqual(sha(given), sha(expected));
}

function unauthorized(reason: string, message: string): CarapaceError {
  return new CarapaceError('UNAUTHORIZED', message, { reason });
}

export function createHooksService(deps: HooksDeps): Service {
  const findRun = deps.db.prepare('SELECT run_id FROM hook_requests WHERE hook = ? AND request_id = ?');
  const insertRun = deps.db.prepare('INSERT INTO hook_requests (hook, request_id, run_id, received_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING');
  const deleteRun = deps.db.prepare('DELETE FROM hook_requests WHERE hook = ? AND request_id = ? AND run_id = ?');
  const seenSignatures = new Map<string, number>();

  function rememberSignature(key: string, now: number): boolean {
    for (const [k, until] of seenSignatures) {
      if (until > now && seenSignatures.size < 10_000) break; // insertion order ≈ expiry order
      seenSignatures.delete(k);
    }
    if ((seenSignatures.get(key) ?? 0) > now) return false;
    seenSignatures.set(key, now + 2 * REPLAY_WINDOW_MS);
    return true;
  }

  function authenticate(req: FastifyRequest, raw: Buffer, secret: string): { signature?: string; timestamped?: boolean } {
    const auth = req.headers.authorization;
    if (typeof auth === 'string') {
      const m = /^Bearer (.+)$/.exec(auth);
      if (!m || !sameSecret(m[1], secret)) throw unauthorized('bearer', 'wrong bearer token');
      return {};
    }
    const sig = req.headers['x-carapace-signature'];
    if (typeof sig !== 'string') throw unauthorized('missing', 'send Authorization: Bearer <secret> or X-Carapace-Signature');
    const m = /^sha256=([0-9a-fA-F]{64})$/.exec(sig);
    const mac = createHmac('sha256', secret).update(raw).digest();
    if (!m || !timingSafeEqual(Buffer.from(m[1], 'hex'), mac)) throw unauthorized('signature', 'signature does not match the body');
    const signature = m[1].toLowerCase();
    const tsHeader = req.headers['x-carapace-timestamp'];
    if (tsHeader === undefined) return { signature, timestamped: false };
    const ts = typeof tsHeader === 'string' && /^\d{1,16}$/.test(tsHeader) ? Number(tsHeader) : NaN;
    if (!Number.isFinite(ts)) throw unauthorized('stale', 'X-Carapace-Timestamp must be Unix time in ms (or s)');
    const tsMs = ts < 1e11 ? ts * 1000 : ts;
    if (Math.abs(deps.clock.now() - tsMs) > REPLAY_WINDOW_MS) throw unauthorized('stale', 'X-Carapace-Timestamp is outside the 5-minute window');
    return { signature, timestamped: true };
  }

  async function handle(req: FastifyRequest<{ Params: { name: string } }>, reply: FastifyReply): Promise<unknown> {
    const name = req.params.name;
    const hook = Object.hasOwn(deps.config().hooks, name) ? deps.config().hooks[name] : undefined;
    if (!hook) throw new CarapaceError('NOT_FOUND', `no hook named ${name}`);
    const secret = resolveCredential(hook.secret, deps.secrets, deps.env);
    if (!secret) {
      deps.log.error('webhook secret is not set; refusing every request to this hook', { hook: name });
      throw new CarapaceError('UNAVAILABLE', 'this hook has no secret configured', { retryable: false });
    }
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const { signature, timestamped } = authenticate(req, raw, secret);

    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new CarapaceError('INVALID_REQUEST', 'the body must be JSON: {"text": "...", "id": "..."}');
    }
    if (!checkBody(body)) {
      const e = checkBody.errors![0];
      throw new CarapaceError('INVALID_REQUEST', `body ${e.instancePath || '/'}: ${e.message}`, { pointer: e.instancePath || '/' });
    }
    if (body.id !== undefined) {
      const first = findRun.get(name, body.id) as { run_id: string } | undefined;
      if (first) return reply.code(200).send({ runId: first.run_id, duplicate: true });
    }
    const now = deps.clock.now();
    const signedOnce = signature !== undefined && !timestamped ? `sig:${signature}` : null;
    const replayed = signature !== undefined && (signedOnce ? findRun.get(name, signedOnce) !== undefined : !rememberSignature(`${name}:${signature}`, now));
    if (replayed) throw unauthorized('replayed', 'this signed request was already received');

    const config = deps.config();
    const agentId = hook.agentId ?? resolveAgent(config, { channel: 'hooks', chatType: 'direct', chatId: name });
    const sessionKey = hook.sessionKey !== undefined && isValidSessionKey(hook.sessionKey) ? hook.sessionKey : `hook:${name}`;
    let runId = `run_${randomUUID()}`;
    if (body.id !== undefined) {
      insertRun.run(name, body.id, runId, now);
      const winner = (findRun.get(name, body.id) as { run_id: string }).run_id;
      if (winner !== runId) return reply.code(200).send({ runId: winner, duplicate: true });
      runId = winner;
    }
    try {
      await deps.dispatch({
        agentId,
        sessionKey,
        runId,
        deliver: hook.deliver ?? null,
        action: hook.action ?? 'agent',
        message: {
          channel: 'hooks',
          chatId: name,
          chatType: 'direct',
          sender: { id: `hook:${name}` },
          text: body.text,
          platformMessageId: body.id ?? runId,
          ts: now,
        },
      });
    } catch (err) {
      if (body.id !== undefined) deleteRun.run(name, body.id, runId); // let the sender's retry start it
      deps.log.warn('webhook could not start a turn', { hook: name, err });
      throw new CarapaceError('UNAVAILABLE', 'the agent is not available; retry later', { retryable: true });
    }
    if (signedOnce) insertRun.run(name, signedOnce, runId, now);
    deps.audit.append({ actor: `hook:${name}`, action: 'hook.run', target: sessionKey, sessionKey, data: { hook: name, runId, requestId: body.id ?? null, agentId } });
    return reply.code(202).send({ runId });
  }

  return {
    name: 'hooks',
    async routes(app: FastifyInstance) {
      await app.register(async (scope) => {
        scope.removeAllContentTypeParsers();
        // The raw bytes are what the signature covers: parse JSON ourselves, after authentication.
        scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: HOOK_BODY_LIMIT }, (_req, body, done) => done(null, body));
        scope.setErrorHandler((err, _req, reply) => {
          const e = err as { code?: string; statusCode?: number };
          const wire = err instanceof CarapaceError
            ? err.toWire()
            : e.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
              ? { code: 'PAYLOAD_TOO_LARGE' as const, message: `the body exceeds ${HOOK_BODY_LIMIT} bytes` }
              : e.statusCode !== undefined && e.statusCode < 500
                ? { code: 'INVALID_REQUEST' as const, message: 'the request is malformed' }
                : toWireError(err);
          if (wire.code === 'INTERNAL') deps.log.error('webhook failed', { err });
          reply.code(ERROR_CODES[wire.code].httpStatus).send({ error: wire });
        });
        scope.post<{ Params: { name: string } }>('/hooks/:name', handle);
      });
    },
  };
}
