import { test } from 'node:test';
import assert from 'node:assert/strict';
import jsqr from 'jsqr';
import { tempHome } from '../helpers/home.ts';
import { spawnGateway } from '../helpers/gateway.ts';
import { runCli } from '../helpers/cli.ts';
import { inviteQr, networkHost, pairUri, qrText } from '../../core/cli/invite-qr.ts';

// protocol.md: `carapace devices invite` prints the invite "as text and QR". The
// printed QR is read back the way a camera would: its half-block characters become
// pixels (no margin added: the code's own quiet zone must do), and a QR decoder
// (jsQR) must find the payload in them. Blocks are the light modules, spaces the dark.

/** Decode a QR printed by qrText (ANSI colours stripped) or return null. */
function scan(text: string): string | null {
  const lines = text.replace(/\x1b\[[0-9;]*m/g, '').split('\n').filter((l) => /[█▀▄]/.test(l));
  if (lines.length === 0) return null;
  const width = Math.max(...lines.map((l) => [...l].length));
  const dark: boolean[][] = [];
  for (const line of lines) {
    const chars = [...line.padEnd(width, '█')];
    dark.push(chars.map((c) => c === ' ' || c === '▄'), chars.map((c) => c === ' ' || c === '▀'));
  }
  const SCALE = 4;
  const [w, h] = [width * SCALE, dark.length * SCALE];
  const px = new Uint8ClampedArray(w * h * 4).fill(255);
  dark.forEach((row, y) =>
    row.forEach((on, x) => {
      if (!on) return;
      for (let dy = 0; dy < SCALE; dy++)
        for (let dx = 0; dx < SCALE; dx++) {
          const i = ((y * SCALE + dy) * w + x * SCALE + dx) * 4;
          px[i] = px[i + 1] = px[i + 2] = 0;
        }
    }),
  );
  return jsqr.default(px, w, h, { inversionAttempts: 'dontInvert' })?.data ?? null;
}

const nic = (address: string, internal = false) => ({ address, internal, family: address.includes(':') ? 'IPv6' : 'IPv4', netmask: '', mac: '', cidr: null }) as never;
const INTERFACES = { lo: [nic('127.0.0.1', true), nic('::1', true)], docker0: [nic('172.17.0.1')], eth0: [nic('fe80::1'), nic('192.0.2.2')] };
const INVITE = { code: 'ABCD-EFGH', gatewayId: 'd208acb504eae303' };

test('qrText prints a QR a camera reads back, with its own colours on a terminal', () => {
  const uri = pairUri('ws://192.0.2.7:18789/ws', INVITE.code, INVITE.gatewayId);
  assert.equal(scan(qrText(uri, false)), uri);
  const tty = qrText(uri, true);
  assert.ok(tty.split('\n').every((l) => l.startsWith('\x1b[97;40m') && l.endsWith('\x1b[0m')), 'each line sets its colours: a light theme does not turn it into its negative');
  assert.equal(scan(tty), uri);
  assert.deepEqual(Object.fromEntries(new URL(uri).searchParams), { url: 'ws://192.0.2.7:18789/ws', code: INVITE.code, gateway: INVITE.gatewayId });
});

test('the QR names the gateway by an address another machine can reach', () => {
  assert.equal(networkHost('0.0.0.0', INTERFACES), '192.0.2.2', 'a wildcard bind: the LAN address, not a container bridge');
  assert.equal(networkHost('::', INTERFACES), '192.0.2.2');
  assert.equal(networkHost('0.0.0.0', { lo: INTERFACES.lo, docker0: INTERFACES.docker0 }), null, 'no LAN address, no QR');
  assert.equal(networkHost('127.0.0.1', INTERFACES), null, 'loopback: nothing else reaches it');
  assert.equal(networkHost('::1', INTERFACES), null);
  assert.equal(networkHost('10.1.2.3', INTERFACES), '10.1.2.3', 'a bind to one address: that address');
});

test("a device gets a pair URI by https publicUrl or LAN address; a phone's browser gets the link over https only", () => {
  const lan = { host: '0.0.0.0', port: 18789 };
  const proxied = { ...lan, publicUrl: 'https://carapace.example.net/' };
  assert.deepEqual(inviteQr('device', INVITE, lan, INTERFACES), { payload: pairUri('ws://192.0.2.2:18789/ws', INVITE.code, INVITE.gatewayId) });
  assert.deepEqual(inviteQr('device', INVITE, proxied, INTERFACES), { payload: pairUri('wss://carapace.example.net/ws', INVITE.code, INVITE.gatewayId) });
  assert.deepEqual(inviteQr('browser', INVITE, proxied, INTERFACES), { payload: 'https://carapace.example.net/#invite=ABCD-EFGH' });
  assert.match((inviteQr('browser', INVITE, lan, INTERFACES) as { none: string }).none, /pairs only over https/);
  assert.match((inviteQr('browser', INVITE, { ...lan, publicUrl: 'http://carapace.lan' }, INTERFACES) as { none: string }).none, /pairs only over https/);
  assert.match((inviteQr('device', INVITE, { host: '127.0.0.1', port: 18789 }, INTERFACES) as { none: string }).none, /loopback only/);
  const ownTls = { ...lan, tls: { sha256: 'AB:CD:EF' } };
  assert.deepEqual(inviteQr('browser', INVITE, ownTls, INTERFACES), { payload: 'https://192.0.2.2:18789/#invite=ABCD-EFGH' }, "the gateway's own TLS makes the LAN link usable");
  assert.deepEqual(inviteQr('device', INVITE, ownTls, INTERFACES), { payload: `${pairUri('wss://192.0.2.2:18789/ws', INVITE.code, INVITE.gatewayId)}&cert=abcdef` }, 'with the certificate to pin');
});

test('on a loopback gateway, invite says why there is no QR instead of printing one nobody can use', async (t) => {
  const home = tempHome('invite');
  t.after(home.cleanup);
  const gw = await spawnGateway(home.dir);
  t.after(() => gw.stop('SIGKILL'));
  const text = await runCli(['devices', 'invite'], { home: home.dir });
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /invite code: [0-9A-Z]{4}-[0-9A-Z]{4}/);
  assert.match(text.stdout, /no QR code: the gateway listens on loopback only/);
  assert.equal(scan(text.stdout), null);
  const json = await runCli(['devices', 'invite', '--json'], { home: home.dir });
  assert.equal(JSON.parse(json.stdout).qr, null);
});

const lan = networkHost('0.0.0.0');

test('on a LAN gateway the printed QR carries the pair URI by LAN address; the --link QR needs an https publicUrl', { skip: lan ? false : 'this machine has no LAN IPv4 address' }, async (t) => {
  const home = tempHome('invite');
  t.after(home.cleanup);
  const gw = await spawnGateway(home.dir, { args: ['--bind', 'lan'] });
  t.after(() => gw.stop('SIGKILL'));
  const plain = await runCli(['devices', 'invite'], { home: home.dir });
  assert.equal(plain.code, 0, plain.stderr);
  const code = /invite code: (\S+)/.exec(plain.stdout)![1];
  const gatewayId = /gateway key id: (\S+)/.exec(plain.stdout)![1];
  assert.equal(scan(plain.stdout), pairUri(`ws://${lan}:${gw.port}/ws`, code, gatewayId));

  const http = await runCli(['devices', 'invite', '--link'], { home: home.dir });
  assert.equal(http.code, 0, http.stderr);
  assert.match(http.stdout, new RegExp(`^http://127\\.0\\.0\\.1:${gw.port}/#invite=`, 'm'), 'the text link is for this machine');
  assert.match(http.stdout, /no QR code: a phone's browser pairs only over https/);

  assert.equal((await runCli(['config', 'set', 'gateway.publicUrl', 'https://carapace.example.net'], { home: home.dir })).code, 0);
  const https = await runCli(['devices', 'invite', '--link'], { home: home.dir });
  assert.match(scan(https.stdout) ?? '', /^https:\/\/carapace\.example\.net\/#invite=[0-9A-Z]{4}-[0-9A-Z]{4}$/);
});
