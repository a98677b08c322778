import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseInbound, parseOutbound } from '../../core/channels/envelope.ts';
import { CarapaceError } from '../../core/errors.ts';

const inbound = {
  channel: 'telegram',
  chatId: '42',
  chatType: 'direct',
  sender: { id: '42', name: 'Ada' },
  text: 'hello',
  platformMessageId: 'm1',
};

test('a well-formed inbound envelope is accepted as is', () => {
  assert.deepEqual(parseInbound(structuredClone(inbound)), inbound);
});

test('an inbound envelope with an unknown key is refused naming its pointer', () => {
  assert.throws(
    () => parseInbound({ ...inbound, isOwner: true }),
    (err: CarapaceError) => err.code === 'INVALID_REQUEST' && err.details?.pointer === '/isOwner',
  );
});

test('an inbound envelope without a platform message id is refused (no de-duplication key)', () => {
  const { platformMessageId: _, ...rest } = inbound;
  assert.throws(() => parseInbound(rest), (err: CarapaceError) => err.code === 'INVALID_REQUEST' && /platformMessageId/.test(err.message));
});

test('an inbound envelope whose channel id could forge a session key segment is refused', () => {
  assert.throws(() => parseInbound({ ...inbound, channel: 'tele:gram' }), (err: CarapaceError) => err.details?.pointer === '/channel');
});

test('a thread message without a thread id is refused', () => {
  assert.throws(() => parseInbound({ ...inbound, chatType: 'thread' }), (err: CarapaceError) => err.details?.pointer === '/threadId');
});

test('an outbound message needs an idempotency key', () => {
  assert.throws(() => parseOutbound({ channel: 'telegram', chatId: '1', text: 'x' }), (err: CarapaceError) => err.code === 'INVALID_REQUEST');
  assert.equal(parseOutbound({ channel: 'telegram', chatId: '1', text: 'x', idempotencyKey: 'k' }).idempotencyKey, 'k');
});
