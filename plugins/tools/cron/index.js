// The `cron` tool (isolate runtime): lets the agent schedule its own future
// turns through the injected `carapace.cron` capability (kernel side:
// core/scheduler/capability.ts, scoped to the calling agent).

let bound = null;

function cap() {
  return bound ?? globalThis.carapace;
}

/** Kernel-side use (no isolate): run the tools against the kernel's cron capability directly. */
export function bindCron(cron) {
  bound = { cron };
  return tools;
}

function describe(j) {
  const when = j.kind === 'cron' ? `cron "${j.expr}" (${j.tz})` : j.kind === 'every' ? `every ${Math.round(j.everyMs / 60000)} min` : `once at ${new Date(j.atMs).toISOString()}`;
  const next = j.nextRunAt == null ? 'no further runs' : `next ${new Date(j.nextRunAt).toISOString()}`;
  return `${j.id}: ${when}, ${next}${j.deliver ? `, delivers to ${j.deliver}` : ''} — ${j.message.slice(0, 80)}`;
}

export const tools = [
  {
    name: 'cron',
    description:
      'Schedule, list or remove your own future agent turns. add: give exactly one of cron (five-field expression, with tz as an IANA zone), at (ISO 8601 time) or every (e.g. "30m", "2h"), plus the message you will receive then; deliver ("channel:chat") sends your reply there.',
    input: {
      type: 'object',
      properties: {
        action: { enum: ['add', 'list', 'remove'] },
        id: { type: 'string' },
        cron: { type: 'string' },
        tz: { type: 'string' },
        at: { type: 'string' },
        every: { type: 'string' },
        message: { type: 'string' },
        deliver: { type: 'string' },
        name: { type: 'string' },
      },
      required: ['action'],
      additionalProperties: false,
    },
    async run(input, ctx) {
      try {
        if (input?.action === 'list') {
          const jobs = await cap().cron.list({ agentId: ctx.agentId });
          return { content: jobs.length ? jobs.map(describe).join('\n') : 'no scheduled jobs', data: { jobs } };
        }
        if (input?.action === 'remove') {
          if (typeof input.id !== 'string') return { content: 'remove needs id', isError: true };
          await cap().cron.remove(input.id, { agentId: ctx.agentId });
          return { content: `removed ${input.id}` };
        }
        if (input?.action === 'add') {
          const spec = {};
          for (const k of ['cron', 'tz', 'at', 'every', 'message', 'deliver', 'name']) if (typeof input[k] === 'string') spec[k] = input[k];
          const job = await cap().cron.add(spec, { agentId: ctx.agentId, sessionKey: ctx.sessionKey });
          return { content: `scheduled ${describe(job)}`, data: { job } };
        }
        return { content: 'action must be add, list or remove', isError: true };
      } catch (e) {
        return { content: `cron ${input?.action ?? ''} failed: ${e && e.message ? e.message : String(e)}`, isError: true };
      }
    },
  },
];
