import { CarapaceError } from '../errors.ts';
import type { Scheduler, JobSpec } from './scheduler.ts';
import type { CronJob } from './store.ts';

// The kernel side of the `cron` capability a tool plugin is granted: scoped to
// the calling agent, so an agent can schedule, see and remove only its own jobs.

export interface CronCapability {
  add(spec: Omit<JobSpec, 'agentId'>, ctx: { agentId: string; sessionKey: string }): Promise<CronJob>;
  list(ctx: { agentId: string }): Promise<CronJob[]>;
  remove(id: string, ctx: { agentId: string }): Promise<void>;
}

export function cronCapability(scheduler: Scheduler, pluginId: string): CronCapability {
  return {
    async add(spec, ctx) {
      return scheduler.add({ ...spec, agentId: ctx.agentId }, `agent:${ctx.agentId}/plugin:${pluginId}`);
    },
    async list(ctx) {
      return scheduler.list().filter((j) => j.agentId === ctx.agentId);
    },
    async remove(id, ctx) {
      const job = scheduler.get(id);
      if (!job || job.agentId !== ctx.agentId) throw new CarapaceError('NOT_FOUND', `no cron job ${id} for agent ${ctx.agentId}`);
      scheduler.remove(id, `agent:${ctx.agentId}/plugin:${pluginId}`);
    },
  };
}
