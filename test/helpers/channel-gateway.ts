// One chat channel through the whole running gateway: a temp home whose config
// enables the channel (pointed at a loopback fake or a real server), secrets set
// with `carapace secrets set`, the loopback Anthropic fake as the only provider
// (answering every turn with "echo: <the user's last words>"), and the real
// `carapace start` spawned on an ephemeral port.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { tempHome } from './home.ts';
import { spawnGateway, type SpawnedGateway } from './gateway.ts';
import { runCli } from './cli.ts';
import { startFakeAnthropic, type FakeLlm, type RecordedRequest } from './fake-anthropic.ts';
import { TEST_SECRETS } from './test-secrets.ts';

export interface ChannelGateway {
  home: string;
  llm: FakeLlm;
  gw: SpawnedGateway;
  /** The user texts the agent saw, one entry per model request (the last user turn). */
  agentSaw(): string[];
  /** `carapace pairing list --json` must name the code; then `carapace pairing approve CHANNEL CODE`. */
  approve(channel: string, code: string): Promise<void>;
}

function lastUserText(req: RecordedRequest): string {
  const messages = (req.body?.messages ?? []) as { role: string; content: string | { type: string; text?: string }[] }[];
  const last = [...messages].reverse().find((m) => m.role === 'user');
  if (!last) return '';
  const content = typeof last.content === 'string' ? last.content : last.content.map((b) => b.text ?? '').join('');
  return content.trim();
}

export async function startChannelGateway(t: TestContext, opts: { name: string; channels: Record<string, unknown>; plugins?: Record<string, unknown>; secrets: Record<string, string>; env?: NodeJS.ProcessEnv; config?: Record<string, unknown> }): Promise<ChannelGateway> {
  const home = tempHome(opts.name);
  t.after(home.cleanup);
  const llm = await startFakeAnthropic();
  t.after(() => llm.close());
  llm.setDefault((req) => ({ text: `echo: ${lastUserText(req)}` }));
  mkdirSync(home.dir, { recursive: true, mode: 0o700 });
  writeFileSync(
    home.paths.config,
    JSON.stringify({
      providers: { anthropic: { apiKey: { secret: 'ANTHROPIC_API_KEY' }, baseUrl: llm.url } },
      agents: { defaults: { model: 'anthropic/claude-sonnet-4-6' } },
      channels: opts.channels,
      ...(opts.plugins ? { plugins: opts.plugins } : {}),
      ...opts.config,
    }),
  );
  for (const [name, value] of Object.entries({ ANTHROPIC_API_KEY: TEST_SECRETS.channelsAnthropicKey, ...opts.secrets })) {
    const r = await runCli(['secrets', 'set', name], { home: home.dir, input: value });
    assert.equal(r.code, 0, r.stderr);
  }
  const gw = await spawnGateway(home.dir, { env: { ANTHROPIC_API_KEY: '', OPENAI_API_KEY: '', OPENAI_BASE_URL: '', ...opts.env } });
  t.after(() => gw.stop('SIGKILL'));
  return {
    home: home.dir,
    llm,
    gw,
    agentSaw: () => llm.requests.filter((r) => r.path === '/v1/messages').map(lastUserText),
    async approve(channel, code) {
      const list = await runCli(['pairing', 'list', '--json'], { home: home.dir });
      assert.match(list.stdout, new RegExp(code.replace('-', '-?')), 'pairing list names the pending code');
      const r = await runCli(['pairing', 'approve', channel, code], { home: home.dir });
      assert.equal(r.code, 0, r.stderr);
    },
  };
}

/** The pairing code in the router's pairing message. */
export function pairingCode(text: string): string {
  const code = /\b([0-9A-Z]{4}-[0-9A-Z]{4})\b/.exec(text)?.[1];
  assert.ok(code, `a pairing code in: ${text}`);
  return code;
}
