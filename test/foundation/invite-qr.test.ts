import { test } from 'node:test';
import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import jsqr from 'jsqr';
import { tempHome } from '../helpers/home.ts';
import { spawnGateway } from '../helpers/gateway.ts';
import { runCli } from '../helpers/cli.ts';
import { networkHost, pairUri, qrText } from '../../core/cli/invite-qr.ts';

// protocol.md: `carapace devices invite` prints the invite "as text and QR". The
// printed QR is read back the way a camera would: its half-block characters become
// pixels, and a QR decoder (jsQR) must find the payload in them. Blocks are the
// light modules (drawn bright), spaces the dark ones.

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
  const QUIET = 4 * SCALE; // a light margin, as on a screen
  const w = width * SCALE + 2 * QUIET;
  const h = dark.length * SCALE + 2 * QUIET;
  const px = new Uint8ClampedArray(w * h * 4).fill(255);
  dark.forEach((row, y) =>
    row.forEach((on, x) => {
      if (!on) return;
      for (let dy = 0; dy < SCALE; dy++)
        for (let dx = 0; dx < SCALE; dx++) {
          const i = ((QUIET + y * SCALE + dy) * w + QUIET + x * SCALE + dx) * 4;
          px[i] = px[i + 1] = px[i + 2] = 0;
        }
    }),
  );
  return jsqr.default(px, w, h, { inversionAttempts: 'dontInvert' })?.data ?? null;
}

test('qrText prints a QR a camera reads back, with its own colours on a terminal', () => {
  const uri = pairUri('ws://192.0.2.7:18789/ws', 'ABCD-EFGH', 'd208acb504eae303');
  assert.equal(scan(qrText(uri, false)), uri);
  const tty = qrText(uri, true);
  assert.ok(tty.split('\n').every((l) => l.startsWith('\x1b[97;40m') && l.endsWith('\x1b[0m')), 'each line sets its colours: a light theme does not turn it into its negative');
  assert.equal(scan(tty), uri);
  assert.deepEqual(Object.fromEntries(new URL(uri).searchParams), { url: 'ws://192.0.2.7:18789/ws', code: 'ABCD-EFGH', gateway: 'd208acb504eae303' });
});

test('the QR names the gateway by an address another machine can reach', () => {
  const nic = (address: string, internal: boolean) => ({ address, internal, family: address.includes(':') ? 'IPv6' : 'IPv4', netmask: '', mac: '', cidr: null }) as never;
  const interfaces = { lo: [nic('127.0.0.1', true), nic('::1', true)], eth0: [nic('fe80::1', false), nic('192.0.2.2', false)] };
  assert.equal(networkHost('0.0.0.0', interfaces), '192.0.2.2', 'a wildcard bind: the LAN address');
  assert.equal(networkHost('::', interfaces), '192.0.2.2');
  assert.equal(networkHost('0.0.0.0', { lo: interfaces.lo }), null, 'no LAN address, no QR');
  assert.equal(networkHost('127.0.0.1', interfaces), null, 'loopback: nothing else reaches it');
  assert.equal(networkHost('::1', interfaces), null);
  assert.equal(networkHost('10.1.2.3', interfaces), '10.1.2.3', 'a bind to one address: that address');
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

const lan = Object.values(networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

test('on a LAN gateway, the printed QR carries the pairing URI and the --link QR the Control UI link, both by LAN address', { skip: lan ? false : 'this machine has no LAN IPv4 address' }, async (t) => {
  const home = tempHome('invite');
  t.after(home.cleanup);
  const gw = await spawnGateway(home.dir, { args: ['--bind', 'lan'] });
  t.after(() => gw.stop('SIGKILL'));
  const plain = await runCli(['devices', 'invite'], { home: home.dir });
  assert.equal(plain.code, 0, plain.stderr);
  const code = /invite code: (\S+)/.exec(plain.stdout)![1];
  const gatewayId = /gateway key id: (\S+)/.exec(plain.stdout)![1];
  assert.equal(scan(plain.stdout), pairUri(`ws://${lan}:${gw.port}/ws`, code, gatewayId));

  const link = await runCli(['devices', 'invite', '--link'], { home: home.dir });
  assert.equal(link.code, 0, link.stderr);
  const scanned = scan(link.stdout);
  assert.match(scanned ?? '', new RegExp(`^http://${lan!.replace(/\./g, '\\.')}:${gw.port}/#invite=[0-9A-Z]{4}-[0-9A-Z]{4}$`));
  assert.match(link.stdout, new RegExp(`^http://127\\.0\\.0\\.1:${gw.port}/#invite=`, 'm'), 'the text link is for this machine');
});
