import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startFakeAnthropic } from '../helpers/fake-anthropic.ts';
import { agentKit, writeWorkspace } from '../helpers/agent-kit.ts';
import { agentConfig } from '../helpers/agent-config.ts';
import { splitFrontmatter } from '../../core/agent/frontmatter.ts';

// As published on ClawHub (OpenClaw's bundled weather skill): one-line JSON metadata.
const WEATHER = `---
name: weather
description: Get current weather and forecasts (no API key required).
homepage: https://wttr.in/:help
metadata: {"clawdbot":{"emoji":"🌤️","requires":{"bins":["curl"]}}}
---

# Weather

Two free services, no API keys needed.

## wttr.in (primary)

Quick one-liner:
\`\`\`bash
curl -s "wttr.in/London?format=3"
\`\`\`
`;

// The nested-YAML form from the ClawHub skill-format docs.
const TODOIST = `---
name: todoist
description: Manage tasks via the Todoist API.
version: 1.0.0
metadata:
  openclaw:
    requires:
      env:
        - TODOIST_API_KEY
      bins:
        - curl
    primaryEnv: TODOIST_API_KEY
---
Use curl with $TODOIST_API_KEY.
`;

const GITHUB = `---
name: github
description: "Interact with GitHub using the \`gh\` CLI."
metadata: {"openclaw":{"requires":{"bins":["gh"]},"install":[{"id":"brew","kind":"brew","formula":"gh","bins":["gh"]}]}}
---
Use gh.
`;

const MAC_ONLY = `---
name: apple-notes
description: Manage Apple Notes via the memo CLI on macOS.
metadata: {"openclaw":{"os":["darwin"],"requires":{"bins":["memo"]}}}
---
`;

function kitWithSkills(t: { after(fn: () => void): void }, url: string, env: Record<string, string> = {}) {
  const kit = agentKit({
    config: agentConfig(url),
    deps: { environment: { env, platform: 'linux', hasBin: (b) => b === 'curl', configHas: () => false } },
  });
  t.after(kit.close);
  writeWorkspace(join(kit.home.paths.workspace, 'skills'), {
    'weather/SKILL.md': WEATHER,
    'todoist/SKILL.md': TODOIST,
    'github/SKILL.md': GITHUB,
    'apple-notes/SKILL.md': MAC_ONLY,
    'weather/references/api.md': 'wttr.in format codes: %t temperature',
  });
  return kit;
}

test('an OpenClaw-format skill folder copied in unchanged is listed, and its body is read on demand', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const kit = kitWithSkills(t, fake.url);
  fake.push({ toolCalls: [{ name: 'skill_read', input: { name: 'weather' } }] }, { toolCalls: [{ name: 'skill_read', input: { name: 'weather', path: 'references/api.md' } }] }, { text: 'It is 12°C in London.' });
  const run = await kit.agent.send({ text: 'Weather in London?' }).done;
  assert.equal(run.text, 'It is 12°C in London.');
  const system = fake.requests[0].body.system as string;
  assert.match(system, /- weather: Get current weather and forecasts \(no API key required\)\./);
  assert.doesNotMatch(system, /Two free services/, 'only the description is in the prompt');
  assert.doesNotMatch(system, /github|todoist|apple-notes/, 'ineligible skills are not offered');
  assert.ok(fake.requests[0].body.tools.some((x: { name: string }) => x.name === 'skill_read'));
  assert.match(JSON.stringify(fake.requests[1].body.messages.at(-1)), /Two free services, no API keys needed/);
  assert.match(JSON.stringify(fake.requests[2].body.messages.at(-1)), /format codes/);
});

test('ineligible skills are skipped with a reason for status', async (t) => {
  const kit = kitWithSkills(t, 'http://127.0.0.1:9');
  const byName = Object.fromEntries(kit.agent.skills().map((s) => [s.name, s]));
  assert.equal(byName.weather.eligible, true);
  assert.equal(byName.weather.emoji, '🌤️');
  assert.equal(byName.github.reason, 'missing binaries: gh');
  assert.equal(byName.todoist.reason, 'missing environment variables: TODOIST_API_KEY');
  assert.equal(byName['apple-notes'].reason, 'needs os darwin (this is linux)');
  const status = (await kit.agent.status!()) as { agents: { skipped: { name: string; reason: string }[] }[] };
  assert.equal(status.agents[0].skipped.length, 3);
});

test('a skill whose requirements are met by the environment becomes eligible', async (t) => {
  const kit = kitWithSkills(t, 'http://127.0.0.1:9', { TODOIST_API_KEY: 'x' });
  assert.equal(kit.agent.skills().find((s) => s.name === 'todoist')!.eligible, true);
});

test('skill_read cannot read outside the skill folder', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const kit = kitWithSkills(t, fake.url);
  writeWorkspace(kit.home.paths.workspace, { 'SECRET.md': 'top secret' });
  fake.push({ toolCalls: [{ name: 'skill_read', input: { name: 'weather', path: '../../SECRET.md' } }] }, { text: 'no' });
  await kit.agent.send({ text: 'x' }).done;
  const result = JSON.stringify(fake.requests[1].body.messages.at(-1));
  assert.match(result, /outside the skill folder/);
  assert.doesNotMatch(result, /top secret/);
});

test('a hundred skills add only their descriptions to the prompt', async (t) => {
  const fake = await startFakeAnthropic();
  t.after(() => fake.close());
  const kit = kitWithSkills(t, fake.url);
  const files: Record<string, string> = {};
  for (let i = 0; i < 100; i++) files[`skill-${i}/SKILL.md`] = `---\nname: skill-${i}\ndescription: Does thing number ${i}.\n---\n${'Long instructions. '.repeat(2000)}`;
  writeWorkspace(join(kit.home.paths.workspace, 'skills'), files);
  fake.push({ text: 'ok' });
  await kit.agent.send({ text: 'x' }).done;
  const system = fake.requests[0].body.system as string;
  assert.match(system, /- skill-99: Does thing number 99\./);
  assert.ok(system.length < 8000, `system prompt is ${system.length} chars`);
});

test('frontmatter: one-line JSON metadata, nested YAML, block scalars and flow lists parse', () => {
  assert.deepEqual(splitFrontmatter(TODOIST).data.metadata, { openclaw: { requires: { env: ['TODOIST_API_KEY'], bins: ['curl'] }, primaryEnv: 'TODOIST_API_KEY' } });
  assert.deepEqual(splitFrontmatter(WEATHER).data.metadata, { clawdbot: { emoji: '🌤️', requires: { bins: ['curl'] } } });
  const { data, body } = splitFrontmatter('---\nname: x\ndescription: >\n  folded\n  text\nbins: [a, "b c"]\nnotes: |\n  line 1\n  line 2\n---\nBody');
  assert.equal(data.description, 'folded text');
  assert.deepEqual(data.bins, ['a', 'b c']);
  assert.equal(data.notes, 'line 1\nline 2\n');
  assert.equal(body, 'Body');
});
