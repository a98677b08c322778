// The `message` tool: lets the agent send a message to a configured channel and
// peer on its own initiative ("tell Grace on telegram the build is green").
// Runs in an isolate; it reaches the gateway only through `carapace.bus`:
// it publishes `message.send` and waits for `message.result.<requestId>`. The
// gateway decides whether the target is allowed (core/channels/message-policy.ts)
// and enqueues on the durable delivery queue; this plugin holds no policy.

/* global carapace */

const RESULT_TIMEOUT_MS = 5000;

/** FNV-1a, hex: a stable key for one tool call, so a re-run of the same call is not sent twice. */
function fnv1a(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

let counter = 0;

export const tools = [
  {
    name: 'message',
    description:
      'Send a message to a person or group on a messaging channel (telegram, slack, ...). ' +
      'Allowed targets: people who may already message you (allowFrom or paired) and configured groups, on channels routed to you. ' +
      'Your normal replies go back automatically; use this only to reach someone else or another chat.',
    input: {
      type: 'object',
      properties: {
        channel: { type: 'string', description: 'channel id, e.g. "telegram"' },
        to: { type: 'string', description: 'the peer id (direct) or group id' },
        kind: { enum: ['direct', 'group'], description: 'direct (default) or group' },
        text: { type: 'string', minLength: 1, maxLength: 32000 },
        threadId: { type: 'string' },
        account: { type: 'string' },
      },
      required: ['channel', 'to', 'text'],
      additionalProperties: false,
    },
    async run(input, ctx) {
      const target = { channel: input.channel, chatId: input.to, chatType: input.kind === 'group' ? 'group' : 'direct', ...(input.account ? { account: input.account } : {}) };
      const requestId = `m${fnv1a(`${ctx.sessionKey}|${ctx.runId ?? ''}|${Date.now()}|${++counter}`)}${counter}`;
      const idempotencyKey = `${ctx.runId ?? ctx.sessionKey}:${fnv1a(JSON.stringify([target, input.text, input.threadId ?? null]))}`;
      let settle;
      const answered = new Promise((resolve) => (settle = resolve));
      const reply = await carapace.bus.subscribe(`message.result.${requestId}`, (msg) => settle(msg.payload));
      let result;
      try {
        // The session goes on the bus message, where the kernel checks it is the one this call serves.
        await carapace.bus.publish('message.send', { requestId, target, text: input.text, threadId: input.threadId, idempotencyKey }, { sessionKey: ctx.sessionKey });
        result = await Promise.race([answered, carapace.timers.sleep(RESULT_TIMEOUT_MS).then(() => null)]);
      } finally {
        await reply.unsubscribe();
      }
      if (result === null) return { content: 'The gateway did not confirm the message in time; it may not have been sent.', isError: true };
      if (!result.ok) return { content: `Not sent: ${result.error.message}`, isError: true, data: result.error };
      return { content: `Queued for delivery to ${target.channel}:${target.chatId}${result.queued > 1 ? ` in ${result.queued} parts` : ''}.`, data: { queued: result.queued } };
    },
  },
];
