// The Control UI pairing itself, approving and revoking others, and refusing to
// be pointed anywhere but its own origin — in real headless Chromium against a
// real `carapace start`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { tempHome } from '../helpers/home.ts';
import { spawnGateway, type SpawnedGateway } from '../helpers/gateway.ts';
import { runCli } from '../helpers/cli.ts';
import { launchBrowser, newPage, screenshot, PHONE } from '../helpers/browser.ts';
import { generateKeyPair } from '../../core/identity/keys.ts';
import { nodeClient } from '../../core/client/node.ts';
import type { CarapaceError } from '../../core/errors.ts';

let home: ReturnType<typeof tempHome>;
let gw: SpawnedGateway;
let browser: Browser;

before(async () => {
  home = tempHome('ui-pair');
  gw = await spawnGateway(home.dir);
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await gw?.stop('SIGKILL');
  home?.cleanup();
});

const connected = (page: Page) => page.waitForFunction(() => document.querySelector('#conn-state')?.classList.contains('connected'), null, { timeout: 20_000 });

async function invite(): Promise<string> {
  const r = await runCli(['devices', 'invite', '--link', '--json'], { home: home.dir });
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { link: string }).link;
}

async function pairedPage(): Promise<{ page: Page; deviceId: string; close(): Promise<void> }> {
  const { context, page, log } = await newPage(browser);
  await page.goto(await invite());
  await connected(page);
  assert.deepEqual(log.errors, []);
  const text = (await page.locator('#conn-state').textContent()) ?? '';
  const devices = JSON.parse((await runCli(['devices', 'list', '--json'], { home: home.dir })).stdout).devices as { id: string; name: string }[];
  const me = devices.find((d) => d.name === 'carapace-ui' && d.id.startsWith(text.split('· ')[1]!));
  assert.ok(me, 'the browser is listed as a paired device');
  return { page, deviceId: me.id, close: () => context.close() };
}

test('the page pairs at once through the one-time invite link and removes the code from the address bar', async () => {
  const { context, page } = await newPage(browser);
  try {
    const link = await invite();
    await page.goto(link);
    await connected(page);
    assert.doesNotMatch(page.url(), /invite=/);
    // Every operator scope: the nav shows the admin-only Logs view.
    await page.locator('nav a[data-view="logs"]').waitFor();

    // The invite is single use: a second browser profile opening the same link is not paired by it.
    const other = await newPage(browser);
    await other.page.goto(link);
    await other.page.locator('#pairing-code').waitFor({ timeout: 20_000 });
    assert.match((await other.page.locator('#gate').textContent())!, /invite in the link was not accepted/);
    await other.context.close();
  } finally {
    await context.close();
  }
});

test('without an invite the page shows its pairing code and connects once the owner runs `carapace devices approve CODE`', async () => {
  const { context, page } = await newPage(browser);
  try {
    await page.goto(gw.url + '/');
    const codeEl = page.locator('#pairing-code');
    await codeEl.waitFor({ timeout: 20_000 });
    const code = (await codeEl.textContent())!.trim();
    assert.match(code, /^[0-9A-Z]{4}-[0-9A-Z]{4}$/);
    await screenshot(page, 'pairing-gate-desktop');
    await page.setViewportSize(PHONE);
    await screenshot(page, 'pairing-gate-phone');
    assert.match((await page.locator('#gate pre.cmd').textContent())!, new RegExp(`carapace devices approve ${code}`));
    const pending = JSON.parse((await runCli(['devices', 'pending', '--json'], { home: home.dir })).stdout).requests as { code: string; client: { name: string } }[];
    assert.equal(pending.find((r) => r.code === code)?.client.name, 'carapace-ui');

    const ok = await runCli(['devices', 'approve', code], { home: home.dir });
    assert.equal(ok.code, 0, ok.stderr);
    await page.locator('#check-now').click();
    await connected(page);

    // The key stays in the browser: a reload reconnects without pairing again.
    await page.reload();
    await connected(page);
  } finally {
    await context.close();
  }
});

test('a pending device is approved from the UI, then revoked from the UI, and its socket is closed', async () => {
  const ui = await pairedPage();
  const key = generateKeyPair();
  const gwKey = JSON.parse(readFileSync(home.paths.gatewayKey, 'utf8')) as { id: string; publicKey: string };
  const device = () => nodeClient({ url: `ws://127.0.0.1:${gw.port}/ws`, key, pin: gwKey, scopes: ['operator.read'], reconnect: false, client: { name: 'phone', version: '1', platform: 'test' } });
  try {
    const first = device();
    const err = await first.connect().then(() => null, (e: unknown) => e as CarapaceError);
    assert.equal(err?.code, 'PAIRING_REQUIRED');
    const code = err!.details!.code as string;

    await ui.page.locator('nav a[data-view="pairing"]').click();
    const card = ui.page.locator(`#device-requests .card[data-code="${code}"]`);
    await card.waitFor();
    assert.match((await card.textContent())!, /phone 1 \(test\)/);
    await card.locator('button[data-action="approve"]').click();
    await card.waitFor({ state: 'detached' });

    const c = device();
    await c.connect();
    const dropped = new Promise<{ code: number }>((resolve) => c.on('client.disconnected', (p) => resolve(p as { code: number })));

    await ui.page.locator('nav a[data-view="devices"]').click();
    const row = ui.page.locator(`#devices .card[data-device="${key.id}"]`);
    await row.locator('.pill.ok').waitFor(); // online
    const revoke = row.locator('button.danger');
    await revoke.click();
    await revoke.click(); // confirm
    const closed = await dropped;
    assert.equal(closed.code, 1008);
    await row.locator('.pill.bad').waitFor(); // shown as revoked
    const again = await device().connect().then(() => null, (e: unknown) => e as CarapaceError);
    assert.equal(again?.details?.reason, 'revoked');
  } finally {
    await ui.close();
  }
});

test('a page served from another origin cannot open the bus: the upgrade is refused with 403', async () => {
  const evil: Server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>other site</title><p>hi</p>');
  });
  evil.listen(0, '127.0.0.1');
  await once(evil, 'listening');
  const port = (evil.address() as { port: number }).port;
  const { context, page } = await newPage(browser);
  try {
    await page.goto(`http://127.0.0.1:${port}/`);
    const outcome = await page.evaluate(
      (url) =>
        new Promise<string>((resolve) => {
          const ws = new WebSocket(url);
          ws.onopen = () => resolve('open');
          ws.onclose = (e) => resolve(`closed ${e.code}`);
        }),
      `ws://127.0.0.1:${gw.port}/ws`,
    );
    assert.equal(outcome, 'closed 1006');
    // The browser hides the status from the page; the gateway says why it refused.
    const deadline = Date.now() + 5000;
    while (!gw.output().includes(`http://127.0.0.1:${port}`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.match(gw.output(), new RegExp(`refused a bus upgrade from a foreign origin[^\\n]*http://127\\.0\\.0\\.1:${port}`));
  } finally {
    await context.close();
    evil.close();
  }
});

test('CVE-2026-25253: a link naming another gateway URL makes the page connect nowhere but its own origin', async () => {
  // A listener where an attacker wants the page (and its signatures) to go.
  let hits = 0;
  const trap: NetServer = createNetServer((s) => {
    hits++;
    s.destroy();
  });
  trap.listen(0, '127.0.0.1');
  await once(trap, 'listening');
  const tp = (trap.address() as { port: number }).port;
  const ui = await pairedPage(); // an already paired browser: the valuable target
  try {
    const { page } = ui;
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    page.on('websocket', (w) => requests.push(w.url()));
    const evilWs = `ws://127.0.0.1:${tp}/ws`;
    for (const link of [`${gw.url}/?gatewayUrl=${encodeURIComponent(evilWs)}`, `${gw.url}/#gatewayUrl=${encodeURIComponent(evilWs)}`, `${gw.url}/?gateway=127.0.0.1:${tp}#/chat`]) {
      await page.goto(link);
      await page.locator('#link-warning:not([hidden])').waitFor();
      assert.match((await page.locator('#link-warning').textContent())!, /only ever talks to the gateway that served it/);
      await connected(page);
    }
    assert.equal(hits, 0, 'nothing connected to the URL in the link');
    assert.deepEqual(requests.filter((u) => new URL(u).port === String(tp)), []);
    assert.ok(requests.every((u) => new URL(u).port === String(gw.port)), `only own-origin requests: ${requests.join(' ')}`);
    assert.ok(requests.includes(`ws://127.0.0.1:${gw.port}/ws`));
    // Even a script in the page cannot reach elsewhere: CSP connect-src 'self'.
    const blocked = await page.evaluate((url) => {
      try {
        new WebSocket(url);
        return 'constructed';
      } catch (e) {
        return String((e as Error).name);
      }
    }, evilWs);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(hits, 0, `the CSP let a socket through (${blocked})`);
  } finally {
    await ui.close();
    trap.close();
  }
});
