import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseReqFrame, parseFrameText, check, validateConnectParams } from '../../core/bus/frames.ts';
import { CarapaceError } from '../../core/errors.ts';

function pointerOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof CarapaceError);
    assert.equal(e.code, 'INVALID_REQUEST');
    return e.details!.pointer as string;
  }
  assert.fail('expected INVALID_REQUEST');
}

test('a well-formed request frame parses', () => {
  const f = parseReqFrame(Buffer.from('{"type":"req","id":"1","method":"health","params":{}}'));
  assert.equal(f.method, 'health');
});

test('invalid UTF-8 is refused', () => {
  assert.equal(pointerOf(() => parseFrameText(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]))), '');
});

test('nesting deeper than the limit is refused with the pointer of the first too-deep container', () => {
  const deep = '{"type":"req","id":"1","method":"x","params":{"a":[' + '['.repeat(100) + ']'.repeat(100) + ']}}';
  assert.equal(pointerOf(() => parseFrameText(deep)), '/params/a/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0');
});

test('__proto__ and constructor keys are refused wherever they appear, escaped or not', () => {
  assert.equal(pointerOf(() => parseFrameText('{"params":{"x":{"__proto__":{"admin":true}}}}')), '/params/x/__proto__');
  assert.equal(pointerOf(() => parseFrameText('{"a":[{"constructor":1}]}')), '/a/0/constructor');
  assert.equal(pointerOf(() => parseFrameText('{"\\u005f_proto__":1}')), '/__proto__');
});

test('schema problems name the JSON pointer of the first problem', () => {
  assert.equal(pointerOf(() => parseReqFrame('{"type":"req","id":"1"}')), '/method');
  assert.equal(pointerOf(() => parseReqFrame('{"type":"req","id":"1","method":"x","extra":1}')), '/extra');
  assert.equal(pointerOf(() => parseReqFrame('{"type":"req","id":"' + 'x'.repeat(65) + '","method":"x"}')), '/id');
  assert.equal(pointerOf(() => check(validateConnectParams, { protocol: 1, client: { name: 'a', version: '1', platform: 'p' }, role: 'operator', scopes: [], device: { id: 'zz', publicKey: 'A'.repeat(43) + '=', nonce: 'A'.repeat(43) + '=', signedAt: 1, signature: 'A'.repeat(86) + '==' } }, '/params')), '/params/device/id');
});

test('an event frame around a pre-serialised payload is the same text as one built from the value', async () => {
  const { eventFrame, eventFrameJson } = await import('../../core/bus/frames.ts');
  const payload = { id: 'm1', topic: 'a.b', payload: { s: 'q"uote\u2028', n: [1, null] }, from: 'device:x', ts: 5 };
  assert.equal(eventFrameJson('bus.message', JSON.stringify(payload), 7), JSON.stringify({ type: 'event', event: 'bus.message', payload, seq: 7 }));
  assert.equal(eventFrame('tick', undefined, 0), JSON.stringify({ type: 'event', event: 'tick', payload: {}, seq: 0 }));
  assert.deepEqual(JSON.parse(eventFrameJson('we"ird', '{}', 1)), { type: 'event', event: 'we"ird', payload: {}, seq: 1 });
});
