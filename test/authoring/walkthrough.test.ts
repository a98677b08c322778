import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempHome } from '../helpers/home.ts';
import { runCli } from '../helpers/cli.ts';
import { spawnRegistry, type SpawnedRegistry } from '../helpers/registry.ts';
import { spawnGateway } from '../helpers/gateway.ts';
import { startFakeAnthropic } from '../helpers/fake-anthropic.ts';
import { connectOwner } from '../../core/cli/connect.ts';
import { agentConfig } from '../helpers/agent-config.ts';

// README "Write your first plugin", executed line by line: the commands are read
// from the README itself, so the walkthrough cannot drift from what is tested.
// Only the registry's port differs (0, not 18790), and $REGISTRY follows it.

const README = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'README.md');

function walkthrough(): string[] {
  const text = readFileSync(README, 'utf8');
  const section = text.slice(text.indexOf('## Write your first plugin'));
  const block = /```sh\n([\s\S]*?)```/.exec(section);
  assert.ok(block, 'the README section has a sh block');
  return block[1]!
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
}

/** Split a command line as sh would for these lines: words, "double-quoted" strings, $VARS. */
function words(line: string, vars: Record<string, string>): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/"([^"]*)"|(\S+)/g)) {
    out.push((m[1] ?? m[2]!).replace(/\$([A-Z_]+)/g, (_x, v: string) => {
      assert.ok(v in vars, `README uses $${v} before setting it`);
      return vars[v]!;
    }));
  }
  return out;
}

test('the README plugin walkthrough goes from nothing to a sandboxed tool the agent calls', async (t) => {
  const home = tempHome('walkthrough');
  t.after(home.cleanup);
  const work = join(dirname(home.dir), 'work');
  mkdirSync(work);
  const env = { CARAPACE_HOME: home.dir, PATH: `${dirname(process.execPath)}:${process.env.PATH}` };

  // The gateway the author already runs (README "A first conversation"), its model at a loopback fake.
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  mkdirSync(home.dir, { recursive: true, mode: 0o700 });
  writeFileSync(home.paths.config, JSON.stringify(agentConfig(fake.url)));
  const gw = await spawnGateway(home.dir, { env: { ANTHROPIC_API_KEY: 'sk-ant-fake-walkthrough' } });
  t.after(() => gw.stop('SIGKILL'));

  let cwd = work;
  let registry: SpawnedRegistry | null = null;
  t.after(() => registry?.stop());
  const vars: Record<string, string> = {};
  const carapace = async (args: string[]) => {
    const r = await runCli(args, { env, cwd });
    assert.equal(r.code, 0, `carapace ${args.join(' ')} failed:\n${r.stderr}${r.stdout}`);
    return r;
  };

  fake.push({ toolCalls: [{ name: 'word_count', input: { text: 'the quick brown fox' } }] }, { text: 'There are 4 words.' });
  let chatOutput = '';
  const lines = walkthrough();
  assert.ok(lines.length >= 10, 'the walkthrough has its steps');
  for (const line of lines) {
    let m: RegExpExecArray | null;
    if ((m = /^cd (\S+)$/.exec(line))) cwd = resolve(cwd, m[1]!);
    else if (line === 'npm test') {
      // Not as a subtest of this run: node:test reports to its parent through NODE_TEST_CONTEXT.
      const { NODE_TEST_CONTEXT: _ctx, ...outer } = process.env;
      const r = spawnSync('npm', ['test'], { cwd, env: { ...outer, ...env }, encoding: 'utf8' });
      assert.equal(r.status, 0, `npm test in the scaffold failed:\n${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /pass 2/);
    } else if ((m = /^carapace registry serve --data (\S+) &$/.exec(line))) {
      registry = await spawnRegistry(resolve(cwd, m[1]!), home.dir);
    } else if ((m = /^export REGISTRY=(\S+)$/.exec(line))) {
      assert.match(m[1]!, /^http:\/\/127\.0\.0\.1:18790$/, 'the README names the default port');
      vars.REGISTRY = registry!.url;
    } else if ((m = /^export ([A-Z_]+)=\$\((carapace .*)\)$/.exec(line))) {
      vars[m[1]!] = (await carapace(words(m[2]!, vars).slice(1))).stdout.trim();
    } else if (line.startsWith('carapace ')) {
      const r = await carapace(words(line, vars).slice(1));
      if (line.startsWith('carapace chat')) chatOutput = r.stdout;
    } else assert.fail(`the walkthrough has a line this test does not know how to run: ${line}`);
  }

  // The agent called the tool in its sandbox and answered with its result.
  assert.match(chatOutput, /There are 4 words\./);
  const toolResult = JSON.stringify(fake.requests[1]!.body.messages);
  assert.match(toolResult, /4 words/, 'the tool result went back to the model');
  assert.ok(JSON.stringify(fake.requests[0]!.body.tools).includes('word_count'), 'the model was offered the tool');

  // And the operator can call it directly; it runs in an isolate, from the registry install.
  const client = (await connectOwner(home.paths))!;
  t.after(() => client.close());
  const r = await client.request<{ content: string; data?: unknown }>('tools.invoke', { tool: 'word_count', input: { text: 'one two three' } });
  assert.equal(r.content, '3 words');
  const { plugins } = await client.request<{ plugins: { id: string; runtime?: string; source: string; version?: string }[] }>('plugins.list', {});
  assert.deepEqual(
    plugins.filter((p) => p.id === 'word-count').map((p) => [p.runtime, p.source, p.version]),
    [['isolate', 'installed', '0.1.0']],
  );
});
