// WebChat end to end in headless Chromium: the page sends over the paired bus
// with chat.send, the agent talks to a loopback fake of the Anthropic API, and
// the reply, tool calls, approvals and aborts show up in the page. Screenshots
// of every view at desktop and phone width go to test-artifacts/ui/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import type { Browser, Page, BrowserContext } from 'playwright-core';
import { tempHome } from '../helpers/home.ts';
import { spawnGateway, type SpawnedGateway } from '../helpers/gateway.ts';
import { runCli } from '../helpers/cli.ts';
import { startFakeAnthropic, type FakeLlm } from '../helpers/fake-anthropic.ts';
import { connectOwner } from '../../core/cli/connect.ts';
import { launchBrowser, newPage, screenshot, DESKTOP, PHONE } from '../helpers/browser.ts';

let home: ReturnType<typeof tempHome>;
let gw: SpawnedGateway;
let fake: FakeLlm;
let browser: Browser;
let context: BrowserContext;
let page: Page;
/** Why provider-backed tests cannot run on this tree, or '' when the agent reaches the fake provider. */

function config(requireApproval: string[]) {
  return {
    providers: { anthropic: { apiKey: { secret: 'ANTHROPIC_API_KEY' }, baseUrl: fake.url, timeoutMs: 30_000 } },
    agents: {
      defaults: { model: { primary: 'anthropic/claude-sonnet-4-5', fallbacks: [] }, tools: { allow: ['*'], deny: [], requireApproval } },
      list: [{ id: 'main' }],
    },
  };
}

before(async () => {
  home = tempHome('ui-chat');
  fake = await startFakeAnthropic();
  mkdirSync(home.dir, { recursive: true, mode: 0o700 });
  writeFileSync(home.paths.config, JSON.stringify(config(['cron'])), { mode: 0o600 });
  gw = await spawnGateway(home.dir, { env: { ANTHROPIC_API_KEY: 'sk-ant-test-ui' } });
  browser = await launchBrowser();
  ({ context, page } = await newPage(browser));
  const r = await runCli(['devices', 'invite', '--link', '--json'], { home: home.dir });
  assert.equal(r.code, 0, r.stderr);
  await page.goto((JSON.parse(r.stdout) as { link: string }).link);
  await page.waitForFunction(() => document.querySelector('#conn-state')?.classList.contains('connected'), null, { timeout: 20_000 });
});

after(async () => {
  await context?.close();
  await browser?.close();
  await gw?.stop('SIGKILL');
  await fake?.close();
  home?.cleanup();
});

async function send(text: string): Promise<void> {
  await page.locator('nav a[data-view="chat"]').click();
  await page.locator('#chat-input').fill(text);
  await page.locator('#send').click();
}

const lastReply = () => page.locator('#messages .msg.assistant').last();

test('agent events for this browser\'s session render as streamed text and a collapsible tool block', async () => {
  // Independent of any provider: the page follows the `agent.event` topic, where the agent publishes every run's events.
  await page.locator('nav a[data-view="chat"]').click();
  await page.locator('#messages').waitFor();
  const deviceId = (await page.locator('#conn-state').textContent())!.split('· ')[1]!;
  const full = JSON.parse((await runCli(['devices', 'list', '--json'], { home: home.dir })).stdout).devices.find((d: { id: string }) => d.id.startsWith(deviceId)).id as string;
  const sessionKey = `agent:main:webchat:dm:${full}`;
  const owner = (await connectOwner(home.paths))!;
  try {
    let seq = 0;
    const ev = (stream: string, data: Record<string, unknown>) => owner.publish('agent.event', { runId: 'run-ui-1', sessionKey, seq: seq++, stream, data });
    await ev('lifecycle', { phase: 'start', agentId: 'main' });
    await ev('assistant', { delta: 'Let me ' });
    await ev('assistant', { delta: 'check.' });
    await ev('tool', { phase: 'start', toolCallId: 't1', name: 'files.read', input: { path: 'notes.md' } });
    await ev('tool', { phase: 'end', toolCallId: 't1', name: 'files.read', isError: false, content: '# Notes' });
    await ev('assistant', { delta: 'Done.' });
    // Another session's run must not leak into this view.
    await owner.publish('agent.event', { runId: 'run-other', sessionKey: 'agent:main:other', seq: 0, stream: 'assistant', data: { delta: 'LEAK' } });
    await ev('lifecycle', { phase: 'end', status: 'done' });
    const bubble = page.locator('#messages .msg.assistant[data-run-id="run-ui-1"][data-status="done"]');
    await bubble.waitFor();
    const texts = await bubble.locator('.text').allTextContents();
    assert.deepEqual(texts, ['Let me check.', 'Done.']);
    const tool = bubble.locator('details.tool');
    assert.equal(await tool.locator('.tool-name').textContent(), 'files.read');
    assert.equal(await tool.locator('.tool-state').textContent(), 'done');
    assert.doesNotMatch((await page.locator('#messages').textContent())!, /LEAK/);
  } finally {
    owner.close();
  }
});

test('a chat message streams the fake provider reply into the page, in this browser\'s WebChat session', async () => {
  fake.push({ text: ['Hel', 'lo from ', 'the fake model.'] });
  await send('hi there');
  await page.locator('#messages .msg.assistant[data-status="done"]').last().waitFor({ timeout: 20_000 });
  // The final text may land a moment after the status flips (deltas and the end event race); wait for it.
  await page.waitForFunction(() => document.querySelector('#messages .msg.assistant:last-of-type .text')?.textContent === 'Hello from the fake model.', undefined, { timeout: 10_000 }).catch(() => {});
  assert.equal((await lastReply().locator('.text').textContent())!, 'Hello from the fake model.');
  const sent = JSON.stringify(fake.requests.at(-1)?.body);
  assert.match(sent, /hi there/);
  // The run was in the session the WebChat view names after this device, and history brings it back.
  await page.reload();
  await page.locator('#messages .msg.user').first().waitFor({ timeout: 20_000 });
  assert.match((await page.locator('#messages').textContent())!, /hi there[\s\S]*Hello from the fake model\./);
});

test('a tool call the model makes is shown as a collapsible block with its input and result', async () => {
  fake.push({ toolCalls: [{ name: 'cron', input: { action: 'list' } }] }, { text: 'You have no scheduled jobs.' });
  await runCli(['config', 'set', 'agents.defaults.tools.requireApproval', '[]'], { home: home.dir });
  await send('what is scheduled?');
  const reply = page.locator('#messages .msg.assistant[data-status="done"]').last();
  await reply.waitFor({ timeout: 20_000 });
  const tool = reply.locator('details.tool');
  assert.equal(await tool.locator('.tool-name').textContent(), 'cron');
  assert.equal(await tool.getAttribute('open'), null, 'collapsed by default');
  await tool.locator('summary').click();
  assert.match((await tool.locator('.tool-input').textContent())!, /"action": "list"/);
  assert.match((await tool.locator('.tool-output').textContent())!, /no scheduled jobs/);
  assert.match((await reply.textContent())!, /You have no scheduled jobs\./);
});

test('a tool call that needs approval waits in the Approvals view and runs once approved there', async () => {
  const set = await runCli(['config', 'set', 'agents.defaults.tools.requireApproval', '["cron"]'], { home: home.dir });
  assert.equal(set.code, 0, set.stderr);
  fake.push({ toolCalls: [{ name: 'cron', input: { action: 'list' } }] }, { text: 'Approved and done.' });
  await send('list my jobs, with approval');
  // The chat shows the request inline too.
  await page.locator('#messages .approval').waitFor({ timeout: 20_000 });
  await page.locator('nav a[data-view="approvals"]').click();
  const card = page.locator('#approvals .approval').first();
  await card.waitFor();
  assert.match((await card.textContent())!, /Run cron\?[\s\S]*"action": "list"/);
  await shoot('approvals');
  await card.locator('button[data-action="approve"]').click();
  await page.locator('#approvals .empty').waitFor();
  await page.locator('nav a[data-view="chat"]').click();
  await page.waitForFunction(() => /Approved and done\./.test(document.querySelector('#messages')?.textContent ?? ''), null, { timeout: 20_000 });
});

test('Stop aborts a running reply', async () => {
  fake.push({ text: ['Thinking'], stallAfterStart: true });
  await send('take your time');
  const stop = page.locator('#abort');
  await stop.waitFor({ state: 'visible', timeout: 20_000 });
  await shoot('chat');
  await stop.click();
  await page.locator('#messages .msg.assistant[data-status="aborted"]').waitFor({ timeout: 20_000 });
  assert.equal(await stop.isVisible(), false);
});

test('a cron job is added, run and removed from the Cron view', async () => {
  await page.locator('nav a[data-view="cron"]').click();
  await page.locator('#cron-add input[name="name"]').fill('morning brief');
  await page.locator('#cron-add select[name="kind"]').selectOption('cron');
  await page.locator('#cron-add input[name="when"]').fill('0 9 * * 1-5');
  await page.locator('#cron-add textarea[name="message"]').fill('Summarise my inbox');
  await page.locator('#cron-add button[type="submit"]').click();
  const job = page.locator('#cron-jobs .card', { hasText: 'morning brief' });
  await job.waitFor();
  const listed = JSON.parse((await runCli(['cron', 'list', '--json'], { home: home.dir })).stdout) as { jobs: { name?: string }[] };
  assert.ok(listed.jobs.some((j) => j.name === 'morning brief'), JSON.stringify(listed));
  await shoot('cron');
  fake.setDefault(() => ({ text: 'Inbox summarised.' }));
  await job.locator('button[data-action="run"]').click();
  await page.locator('.toast.ok', { hasText: 'started' }).waitFor();
  const remove = job.locator('button.danger');
  await remove.click();
  await remove.click();
  await job.waitFor({ state: 'detached' });
});

test('every view renders at desktop and phone width without page errors', async () => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  for (const view of ['chat', 'sessions', 'devices', 'pairing', 'plugins', 'logs', 'status', 'approvals']) {
    await page.locator(`nav a[data-view="${view}"]`).click();
    await page.locator(`section.view-${view}`).waitFor();
    if (view === 'sessions') {
      await page.locator('#sessions .card button[data-action="open"]').first().click();
      await page.locator('#transcript .msg').first().waitFor();
    }
    if (view === 'logs') {
      // A CLI connection logs 'bus device connected' on the gateway: it must arrive in the live tail.
      await runCli(['devices', 'list'], { home: home.dir });
      await page.locator('#log-lines .logline', { hasText: 'bus device connected' }).first().waitFor();
    }
    if (view === 'status') await page.locator('#uptime').waitFor();
    await page.waitForTimeout(150);
    await shoot(view);
  }
  assert.deepEqual(errors, []);
});

async function shoot(name: string): Promise<void> {
  for (const [label, size] of [['desktop', DESKTOP], ['phone', PHONE]] as const) {
    await page.setViewportSize(size);
    await page.waitForTimeout(50);
    await screenshot(page, `${name}-${label}`);
  }
  await page.setViewportSize(DESKTOP);
}
