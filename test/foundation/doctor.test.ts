import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync, statSync } from 'node:fs';
import { tempHome } from '../helpers/home.ts';
import { runCli } from '../helpers/cli.ts';

const NO_PROVIDER_ENV = { ANTHROPIC_API_KEY: '', OPENAI_API_KEY: '', OPENAI_BASE_URL: '' };

interface Report {
  ok: boolean;
  findings: { id: string; severity: string; what: string; why: string; fix: string; fixable: boolean }[];
}

async function doctor(home: string, args: string[] = [], env: NodeJS.ProcessEnv = NO_PROVIDER_ENV): Promise<{ code: number | null; report: Report }> {
  const res = await runCli(['doctor', '--json', ...args], { home, env });
  return { code: res.code, report: JSON.parse(res.stdout) as Report };
}

test('doctor flags a LAN bind without TLS as an error with its fix', async (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  mkdirSync(home.dir, { recursive: true, mode: 0o700 });
  writeFileSync(`${home.dir}/config.json`, '{"gateway":{"bind":"lan"}}', { mode: 0o600 });
  const { code, report } = await doctor(home.dir);
  assert.equal(code, 1);
  const f = report.findings.find((x) => x.id === 'bind.exposed');
  assert.ok(f, JSON.stringify(report));
  assert.equal(f.severity, 'error');
  assert.match(f.fix, /gateway\.bind loopback/);
});

test('doctor finds a world-readable state directory and key, and --fix repairs both', async (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  mkdirSync(`${home.dir}/identity`, { recursive: true });
  writeFileSync(`${home.dir}/identity/owner.json`, '{}');
  chmodSync(home.dir, 0o755);
  chmodSync(`${home.dir}/identity/owner.json`, 0o644);
  const before = await doctor(home.dir);
  assert.ok(before.report.findings.some((f) => f.id === 'perm.home' && f.fixable));
  assert.ok(before.report.findings.some((f) => f.id === 'perm.file' && f.what.includes('owner.json')));
  assert.equal(before.code, 1);

  const fixed = await doctor(home.dir, ['--fix']);
  assert.equal(fixed.report.findings.some((f) => f.id.startsWith('perm.')), false, JSON.stringify(fixed.report));
  assert.equal(statSync(home.dir).mode & 0o777, 0o700);
  assert.equal(statSync(`${home.dir}/identity/owner.json`).mode & 0o777, 0o600);
});

test('doctor says how to add a provider when none is configured, and not when one is in the environment', async (t) => {
  const home = tempHome();
  t.after(home.cleanup);
  const none = await doctor(home.dir);
  const f = none.report.findings.find((x) => x.id === 'provider.missing');
  assert.ok(f);
  assert.match(f.fix, /ANTHROPIC_API_KEY/);
  const withEnv = await doctor(home.dir, [], { ...NO_PROVIDER_ENV, OPENAI_BASE_URL: 'http://127.0.0.1:11434/v1' });
  assert.equal(withEnv.report.findings.some((x) => x.id === 'provider.missing'), false);
});
