import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { ERROR_CODES, CarapaceError, toWireError } from '../../core/errors.ts';

const SPEC = new URL('../../../shared/spec/protocol.md', import.meta.url);

test('every error code in core/errors.ts is one the protocol documents, and vice versa', { skip: existsSync(SPEC) ? false : 'shared/spec is not beside this checkout' }, () => {
  const spec = readFileSync(SPEC, 'utf8');
  const section = spec.slice(spec.indexOf('## Error codes'), spec.indexOf('## Abuse limits'));
  const documented = new Set([...section.matchAll(/`([A-Z_]+)`/g)].map((m) => m[1]));
  assert.deepEqual(new Set(Object.keys(ERROR_CODES)), documented);
});

test('a non-Carapace error becomes INTERNAL on the wire with no message or stack from inside', () => {
  const wire = toWireError(new Error('ENOENT: /root/.carapace/secret-path'));
  assert.deepEqual(wire, { code: 'INTERNAL', message: 'Internal error' });
  assert.deepEqual(new CarapaceError('FORBIDDEN', 'no', { missingScope: 'operator.admin' }).toWire(), {
    code: 'FORBIDDEN',
    message: 'no',
    details: { missingScope: 'operator.admin' },
  });
});

test('UNAVAILABLE always carries details.retryable on the wire (protocol.md), true unless the thrower says otherwise', () => {
  assert.deepEqual(new CarapaceError('UNAVAILABLE', 'busy').toWire(), { code: 'UNAVAILABLE', message: 'busy', details: { retryable: true } });
  assert.deepEqual(new CarapaceError('UNAVAILABLE', 'no model', { retryable: false, hint: 'x' }).toWire(), { code: 'UNAVAILABLE', message: 'no model', details: { retryable: false, hint: 'x' } });
  assert.deepEqual(new CarapaceError('NOT_FOUND', 'gone').toWire(), { code: 'NOT_FOUND', message: 'gone' });
});
