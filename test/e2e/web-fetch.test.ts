import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tempHome } from '../helpers/home.ts';
import { spawnGateway } from '../helpers/gateway.ts';
import { connectOwner } from '../../core/cli/connect.ts';
import { isPrivateAddress } from '../../core/plugins/addresses.ts';

// The bundled web_fetch tool (net:*:80/443 — any public host) run through a real
// gateway: every private, loopback, link-local and metadata target is refused by
// the kernel before a connection is made.

test('web_fetch refuses loopback in every spelling, and metadata, without connecting', async (t) => {
  let hits = 0;
  const server = createServer((_req, res) => {
    hits++;
    res.end('secret internal page');
  });
  await new Promise<void>((r) => server.listen(0, '::', () => r()));
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;

  const home = tempHome('webfetch');
  t.after(home.cleanup);
  const gw = await spawnGateway(home.dir);
  t.after(() => gw.stop('SIGKILL'));
  const client = (await connectOwner(home.paths))!;
  t.after(() => client.close());

  for (const url of [
    `http://127.0.0.1:${port}/`,
    `http://[::1]:${port}/`,
    `http://localhost:${port}/`,
    `http://[::ffff:127.0.0.1]:${port}/`,
    'http://169.254.169.254/latest/meta-data/',
  ]) {
    const r = await client.request<{ content: string; isError?: boolean }>('tools.invoke', { tool: 'web_fetch', input: { url } });
    assert.equal(r.isError, true, `${url}: ${r.content}`);
    assert.match(r.content, /private|loopback|link-local|not granted/i, url);
    assert.doesNotMatch(r.content, /secret internal page/);
  }
  assert.equal(hits, 0, 'no request reached the loopback server');
});

test('private ranges are classified as private before any connection (10/8, 172.16/12, 192.168/16, link-local, ULA)', () => {
  for (const a of ['10.0.0.1', '172.16.5.4', '192.168.1.1', '169.254.169.254', '127.0.0.1', '::1', 'fc00::1', 'fe80::1', '::ffff:10.0.0.1', '0.0.0.0']) {
    assert.equal(isPrivateAddress(a), true, a);
  }
  for (const a of ['93.184.215.14', '2606:2800:220:1::1']) assert.equal(isPrivateAddress(a), false, a);
});
