import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sessionKeyFor, agentOfSessionKey, isValidSessionKey } from '../../core/sessions/session-key.ts';

const dm = { agentId: 'main', channel: 'telegram', account: 'bot1', chatType: 'direct' as const, chatId: '42' };

test('direct-message session keys follow session.dmScope', () => {
  assert.equal(sessionKeyFor(dm, 'main'), 'agent:main:main');
  assert.equal(sessionKeyFor(dm, 'per-peer'), 'agent:main:dm:42');
  assert.equal(sessionKeyFor(dm, 'per-channel-peer'), 'agent:main:telegram:dm:42');
  assert.equal(sessionKeyFor(dm, 'per-account-channel-peer'), 'agent:main:telegram:bot1:dm:42');
});

test('groups and threads get their own sessions whatever the dmScope', () => {
  const group = { ...dm, chatType: 'group' as const, chatId: '-100' };
  assert.equal(sessionKeyFor(group, 'main'), 'agent:main:telegram:group:-100');
  assert.equal(sessionKeyFor({ ...group, chatType: 'thread', threadId: '7' }, 'main'), 'agent:main:telegram:group:-100:thread:7');
});

test('a peer id containing ":" cannot forge another session key', () => {
  const forged = sessionKeyFor({ ...dm, chatId: '42:group:x' }, 'per-channel-peer');
  assert.equal(forged, 'agent:main:telegram:dm:42%3Agroup%3Ax');
  assert.notEqual(forged, sessionKeyFor({ ...dm, chatType: 'group', chatId: 'x' }, 'per-channel-peer'));
  assert.equal(agentOfSessionKey(forged), 'main');
});

test('only agent, hook and cron keys are valid client-chosen session keys', () => {
  assert.ok(isValidSessionKey('agent:main:main'));
  assert.ok(isValidSessionKey('hook:ci'));
  assert.equal(isValidSessionKey('main'), false);
  assert.equal(isValidSessionKey('agent:main:has space'), false);
  assert.equal(isValidSessionKey('x'.repeat(600)), false);
});
