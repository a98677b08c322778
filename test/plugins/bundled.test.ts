import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { bundledPlugins } from '../../core/plugins/installed.ts';
import { loadTrustStore, verifyPlugin } from '../../core/plugins/manifest.ts';

test('every bundled manifest is signed by the first-party key and matches its files', () => {
  const { store } = loadTrustStore(null);
  const all = bundledPlugins();
  assert.ok(all.length >= 1);
  for (const loc of all) {
    const v = verifyPlugin(readFileSync(loc.manifestFile, 'utf8'), loc.dir, { trust: store, source: 'bundled' });
    assert.equal(v.key.firstParty, true, loc.id);
    assert.equal(v.manifest.id, loc.id);
  }
});
