import { test } from 'node:test';
import assert from 'node:assert/strict';
import nacl from 'tweetnacl';
import { keyPairFromSeed, generateKeyPair, sign, verify } from '../../core/identity/keys.ts';

test('keys and signatures made natively are the ones tweetnacl makes, so existing key files and signatures keep working', () => {
  for (let i = 0; i < 20; i++) {
    const seed = nacl.randomBytes(32);
    const theirs = nacl.sign.keyPair.fromSeed(seed);
    const ours = keyPairFromSeed(seed);
    assert.deepEqual(ours.secretKey, theirs.secretKey);
    assert.deepEqual(ours.publicKey, theirs.publicKey);
    const message = `challenge ${i} ✓`;
    const sig = sign(message, ours);
    assert.equal(sig, Buffer.from(nacl.sign.detached(Buffer.from(message), theirs.secretKey)).toString('base64'));
    assert.equal(verify(message, sig, ours.publicKey), true);
    assert.equal(nacl.sign.detached.verify(Buffer.from(message), Buffer.from(sig, 'base64'), theirs.publicKey), true);
  }
});

test('a signature does not verify for another message or another key', () => {
  const a = generateKeyPair();
  const b = generateKeyPair();
  const sig = sign('pay 10', a);
  assert.equal(verify('pay 10', sig, a.publicKey), true);
  assert.equal(verify('pay 1000', sig, a.publicKey), false);
  assert.equal(verify('pay 10', sig, b.publicKey), false);
  assert.equal(verify('pay 10', 'not base64!', a.publicKey), false);
});
