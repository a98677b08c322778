import { test } from 'node:test';
import assert from 'node:assert/strict';
import { check } from '../../core/plugins/capabilities.ts';
import { makeGrant } from '../../core/plugins/grant.ts';

const roots = { WORKSPACE: '/w', PLUGIN_DATA: '/d' };
const anyHttps = makeGrant('web', ['net:*:443'], [], roots);

test('net:*:PORT lets a plugin reach any public host on that port, and no other port', () => {
  assert.deepEqual(check(anyHttps, { cap: 'net', host: 'example.org', port: 443 }), { allowed: true });
  assert.deepEqual(check(anyHttps, { cap: 'net.address', host: 'example.org', port: 443, address: '93.184.215.14', private: false }), { allowed: true });
  assert.equal(check(anyHttps, { cap: 'net', host: 'example.org', port: 22 }).allowed, false);
});

test('a wildcard grant never unlocks a private, loopback or metadata address', () => {
  for (const [host, address] of [
    ['127.0.0.1', '127.0.0.1'],
    ['169.254.169.254', '169.254.169.254'],
    ['10.0.0.1', '10.0.0.1'],
    ['localhost', '127.0.0.1'],
    ['evil.example', '127.0.0.1'],
  ]) {
    const d = check(anyHttps, { cap: 'net.address', host, port: 443, address, private: true });
    assert.equal(d.allowed, false, `${host} → ${address}`);
    assert.match(!d.allowed ? d.reason : '', /private, loopback or link-local/);
  }
});

test('a literal grant still unlocks exactly the private address it names', () => {
  const local = makeGrant('ollama', ['net:127.0.0.1:11434'], [], roots);
  assert.deepEqual(check(local, { cap: 'net.address', host: '127.0.0.1', port: 11434, address: '127.0.0.1', private: true }), { allowed: true });
  assert.equal(check(local, { cap: 'net.address', host: '127.0.0.1', port: 11435, address: '127.0.0.1', private: true }).allowed, false);
});
