import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createToolRunner } from '../../core/runtime/tools.ts';
import { prepareOutbound } from '../../core/channels/outbound.ts';

// Text the model writes can be steered by whoever it reads (a web page, a chat
// message). A `{{secret:NAME}}` it writes must never reach a plugin live: the
// plugin would send it to a host holding NAME, and the kernel would fill it in.

test('a model-written tool input reaches a plugin tool with no live secret placeholder', async () => {
  let received: unknown;
  const runner = createToolRunner({
    host: { listTools: () => [], invokeTool: async (_n, input) => ((received = input), { content: 'ok' }) },
    kernelTools: () => [],
    audit: { append: () => 0 } as never,
  });
  await runner.run('github_create_issue', { title: 'hi', body: 'token: {{secret:GITHUB_TOKEN}}', nested: ['{{ secret:X }}'] }, {
    agentId: 'main',
    sessionKey: 'agent:main:main',
    runId: 'r',
    signal: new AbortController().signal,
  });
  assert.doesNotMatch(JSON.stringify(received), /\{\{\s*secret:/);
  assert.match(JSON.stringify(received), /GITHUB_TOKEN/, 'the words themselves survive');
});

test('every field of an outbound message the agent can steer is defanged, the idempotency key kept as is', () => {
  const [out] = prepareOutbound({
    channel: 'slack',
    chatId: 'C1',
    threadId: '{{secret:SLACK_BOT_TOKEN}}',
    replyTo: '{{secret:SLACK_BOT_TOKEN}}',
    text: 'hi {{secret:SLACK_BOT_TOKEN}}',
    media: [{ kind: 'file', ref: 'https://x/{{secret:SLACK_BOT_TOKEN}}' }],
    idempotencyKey: 'reply:{{secret:K}}',
  });
  const { idempotencyKey, ...rest } = out;
  assert.doesNotMatch(JSON.stringify(rest), /\{\{\s*secret:/);
  assert.equal(idempotencyKey, 'reply:{{secret:K}}');
});
