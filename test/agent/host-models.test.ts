import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHost } from '../helpers/plugin-host.ts';
import { createHostModelClient } from '../../core/runtime/models.ts';
import { ModelCallError } from '../../core/agent/types.ts';
import type { ProviderConfig } from '../../core/config/config.ts';

// The gateway's ModelClient (core/runtime/models.ts) on the real plugin host and
// the bundled openai provider plugin: each `providers.<id>` is its own instance.

const providers: Record<string, ProviderConfig> = {
  openai: { baseUrl: 'http://127.0.0.1:9/v1', models: [{ id: 'house-model', contextWindow: 1000 }] },
  ollama: { api: 'openai', baseUrl: 'http://127.0.0.1:9/v1', models: [{ id: 'house-model', contextWindow: 2000 }] },
};

const badRequest = (pattern: RegExp) => (e: unknown) => e instanceof ModelCallError && e.info.kind === 'bad_request' && pattern.test(e.message);

test('endpoints of one wire format each have their own model catalog', async (t) => {
  const fx = await startHost(t, [], null, { userConfig: () => ({ providers }) });
  const models = createHostModelClient({ host: fx.host, providers: () => providers });
  assert.equal((await models.modelInfo({ provider: 'openai', model: 'house-model' })).contextWindow, 1000);
  assert.equal((await models.modelInfo({ provider: 'ollama', model: 'house-model' })).contextWindow, 2000);
});

test('a model of an unconfigured provider, or of one whose plugin is disabled, fails with the reason', async (t) => {
  const fx = await startHost(t, [], null, { userConfig: () => ({ providers }), pluginConfig: () => ({ openai: { enabled: false } }) });
  const models = createHostModelClient({ host: fx.host, providers: () => providers });
  const request = { model: 'm', system: '', messages: [], tools: [] };
  await assert.rejects(models.complete({ provider: 'deepseek', model: 'm' }, request, () => {}), badRequest(/no provider "deepseek" is configured/));
  await assert.rejects(models.complete({ provider: 'ollama', model: 'm' }, request, () => {}), badRequest(/provider "ollama" needs the "openai" provider plugin: plugin openai is disabled/));
});
