import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startHost, stateOf } from '../helpers/plugin-host.ts';
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

test('the five channel plugins are bundled: signed manifests in manifests/, no drafts left in their folders', () => {
  const { store } = loadTrustStore(null);
  const channels = bundledPlugins().filter((l) => l.manifestFile.includes('/manifests/channel.'));
  assert.deepEqual(channels.map((l) => l.id).sort(), ['discord', 'email', 'irc', 'slack', 'telegram']);
  for (const loc of channels) {
    assert.equal(existsSync(join(loc.dir, 'plugin.json')), false, `${loc.id} still has a draft plugin.json`);
    const v = verifyPlugin(readFileSync(loc.manifestFile, 'utf8'), loc.dir, { trust: store, source: 'bundled' });
    assert.equal(v.manifest.kind, 'channel');
    assert.equal(v.manifest.runtime, 'isolate');
    assert.ok(v.manifest.provides?.channel?.chunkLimit, `${loc.id} declares its chunk limit`);
    assert.deepEqual(v.manifest.permissions?.bus?.publish, ['channel.inbound']);
    assert.ok(v.manifest.permissions?.bus?.subscribe?.includes(`channel.outbound.${loc.id}`));
  }
});

test('bundled channel plugins are not started unless the user enabled them (channels.<id>.enabled)', async (t) => {
  const fx = await startHost(t, [], null);
  for (const id of ['telegram', 'discord', 'slack', 'irc', 'email']) assert.equal(stateOf(fx.host, id), 'stopped', id);
  assert.deepEqual(fx.host.pluginsOf('channel').sort(), ['discord', 'email', 'irc', 'slack', 'telegram']);
});
