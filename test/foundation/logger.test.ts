import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogHub } from '../../core/log/logger.ts';

function capture() {
  const lines: string[] = [];
  const stream = new Writable({ write(chunk, _enc, cb) { lines.push(...String(chunk).split('\n').filter(Boolean)); cb(); } });
  return { lines, stream };
}

test('log records are JSON lines with level, message, and child fields such as the session id', () => {
  const { lines, stream } = capture();
  const hub = createLogHub({ stream, level: 'info' });
  hub.logger.child({ sessionKey: 'agent:main:webchat:dm:1' }).info('turn done', { steps: 2 });
  hub.logger.debug('not shown at info');
  assert.equal(lines.length, 1);
  const rec = JSON.parse(lines[0]);
  assert.equal(rec.level, 'info');
  assert.equal(rec.msg, 'turn done');
  assert.equal(rec.sessionKey, 'agent:main:webchat:dm:1');
  assert.equal(rec.steps, 2);
});

test('secret values and credential fields never reach a log line', () => {
  const { lines, stream } = capture();
  const hub = createLogHub({ stream, secretValues: () => ['sk-live-abcdef123456'] });
  hub.logger.error('provider said: invalid key sk-live-abcdef123456', { headers: { authorization: 'Bearer xyz', 'x-api-key': 'k' }, token: 't0ken' });
  const text = lines.join('\n');
  assert.doesNotMatch(text, /sk-live-abcdef123456|Bearer xyz|t0ken|"k"/);
  assert.match(text, /\[redacted\]/);
});

test('on a TTY the format is human-readable', () => {
  const { lines, stream } = capture();
  createLogHub({ stream, pretty: true }).logger.warn('backing off', { channel: 'telegram' });
  assert.match(lines[0], /^\d\d:\d\d:\d\d WARN {2}backing off channel=telegram$/);
});
