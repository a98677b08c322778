import type { MethodRegistry } from '../bus/types.ts';
import type { Scheduler, JobSpec } from './scheduler.ts';

const jobSpec = {
  name: { type: 'string', maxLength: 200 },
  agentId: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,63}$' },
  cron: { type: 'string', maxLength: 200 },
  tz: { type: 'string', maxLength: 64 },
  at: { type: ['string', 'integer'] },
  every: { type: ['string', 'integer'] },
  message: { type: 'string', minLength: 1, maxLength: 20000 },
  sessionKey: { type: 'string', minLength: 1, maxLength: 256 },
  deliver: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,63}:.+$', maxLength: 256 },
  missed: { enum: ['run-once', 'skip'] },
};

/** `cron.list` (read), `cron.add` / `cron.remove` / `cron.run` (write). */
export function registerCronMethods(methods: MethodRegistry, scheduler: Scheduler): void {
  methods.register('cron.list', {
    scope: 'operator.read',
    params: { type: 'object', properties: {}, additionalProperties: false },
    handler: () => ({ jobs: scheduler.list() }),
  });
  methods.register<JobSpec>('cron.add', {
    scope: 'operator.write',
    params: {
      type: 'object',
      properties: { ...jobSpec, idempotencyKey: { type: 'string', minLength: 1, maxLength: 128 } },
      required: ['message'],
      additionalProperties: false,
    },
    handler: (p, caller) => {
      const { idempotencyKey: _k, ...spec } = p as JobSpec & { idempotencyKey?: string };
      return { job: scheduler.add(spec, `device:${caller.deviceId}`) };
    },
  });
  // The registry adds idempotencyKey to every idempotent method's params (core/bus/methods.ts).
  const byJobId = { type: 'object', properties: { id: { type: 'string', minLength: 1, maxLength: 64 } }, required: ['id'], additionalProperties: false };
  methods.register<{ id: string }>('cron.remove', {
    scope: 'operator.write',
    params: byJobId,
    handler: (p, caller) => {
      scheduler.remove(p.id, `device:${caller.deviceId}`);
      return { removed: p.id };
    },
  });
  methods.register<{ id: string }>('cron.run', {
    scope: 'operator.write',
    params: byJobId,
    handler: async (p, caller) => ({ run: await scheduler.runNow(p.id, `device:${caller.deviceId}`) }),
  });
}
