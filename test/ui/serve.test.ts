import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { tempHome } from '../helpers/home.ts';
import { spawnGateway, type SpawnedGateway } from '../helpers/gateway.ts';
import { runCli } from '../helpers/cli.ts';

let home: ReturnType<typeof tempHome>;
let gw: SpawnedGateway;

before(async () => {
  home = tempHome('ui-serve');
  gw = await spawnGateway(home.dir);
});
after(async () => {
  await gw?.stop('SIGKILL');
  home?.cleanup();
});

test('the page at / carries a strict CSP, X-Frame-Options DENY and nosniff', async () => {
  const res = await fetch(`${gw.url}/`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type')!, /text\/html/);
  const csp = res.headers.get('content-security-policy')!;
  for (const d of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "object-src 'none'"]) assert.ok(csp.includes(d), `CSP lacks ${d}: ${csp}`);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/);
  assert.equal(res.headers.get('x-frame-options'), 'DENY');
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  const html = await res.text();
  assert.doesNotMatch(html, /<script>|<style|\sstyle=|\son[a-z]+=|https?:\/\//i, 'no inline script or style, nothing external');
});

test('UI TypeScript is served as JavaScript with its types stripped', async () => {
  const res = await fetch(`${gw.url}/ui/src/conn.ts`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type')!, /^text\/javascript/);
  const js = await res.text();
  assert.doesNotMatch(js, /export type ConnState|: Promise<void>|import type/);
  assert.match(js, /export function createConnection/);
});

test('the page reuses the kernel bus client, served from core/client/client.ts', async () => {
  const res = await fetch(`${gw.url}/core/client/client.ts`);
  assert.equal(res.status, 200);
  assert.match(await res.text(), /export class BusClient/);
});

test('nothing else of the repository is reachable: other core modules, traversal, dotfiles', async () => {
  for (const path of ['/core/bus/server.ts', '/core/identity/keys.ts', '/ui/../package.json', '/ui/%2e%2e/package.json', '/ui/%2e%2e%2fpackage.json', '/ui/.hidden.ts', '/package.json', '/core/client/node.ts', '/ui/src']) {
    const res = await fetch(`${gw.url}${path}`);
    assert.equal(res.status, 404, `${path} answered ${res.status}`);
  }
});

test('a repeated request with the ETag gets 304', async () => {
  const first = await fetch(`${gw.url}/ui/app.css`);
  const etag = first.headers.get('etag')!;
  assert.ok(etag);
  const again = await fetch(`${gw.url}/ui/app.css`, { headers: { 'if-none-match': etag } });
  assert.equal(again.status, 304);
});

test('carapace start prints a one-time Control UI link with the invite in the fragment', () => {
  const m = /open the Control UI[^:]*: (http:\/\/127\.0\.0\.1:(\d+)\/#invite=([0-9A-Z]{4}-[0-9A-Z]{4}))/.exec(gw.output());
  assert.ok(m, `no link in:\n${gw.output()}`);
  assert.equal(Number(m[2]), gw.port);
});

test('`carapace devices invite --link` prints a link to this gateway', async () => {
  const r = await runCli(['devices', 'invite', '--link', '--json'], { home: home.dir });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { link: string; scopes: string[] };
  assert.match(out.link, new RegExp(`^http://127\\.0\\.0\\.1:${gw.port}/#invite=[0-9A-Z]{4}-[0-9A-Z]{4}$`));
  assert.deepEqual([...out.scopes].sort(), ['operator.admin', 'operator.pairing', 'operator.read', 'operator.write']);
});

test('a bus upgrade with a foreign Origin is refused with 403 before any frame', async () => {
  const status = await new Promise<number>((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${gw.port}/ws`, { headers: { origin: 'http://127.0.0.1:1' } });
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('open', () => reject(new Error('opened')));
    ws.on('error', () => {});
  });
  assert.equal(status, 403);
});
