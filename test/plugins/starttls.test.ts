import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { TLSSocket } from 'node:tls';
import { readFileSync } from 'node:fs';
import { createSocketTable } from '../../core/plugins/sockets.ts';
import { makeGrant } from '../../core/plugins/grant.ts';
import { mapSecrets } from '../../core/secrets/source.ts';
import { haveOpenssl, selfSignedCert } from '../helpers/mail-servers.ts';

const SECRET = 'hunter2-smtp-secret';

// A plugin that writes while the handshake is still running must not put a
// substituted secret on the wire in clear text.
test('a write during STARTTLS is refused: nothing leaves in clear text while the handshake runs', { skip: haveOpenssl ? false : 'openssl is not installed' }, async (t) => {
  const cert = selfSignedCert();
  t.after(cert.cleanup);
  const clear: string[] = [];
  const server = createServer((s) => {
    s.write('220 go ahead\r\n');
    s.once('data', () => {
      s.on('data', (d) => clear.push(d.toString('latin1')));
      const tls = new TLSSocket(s, { isServer: true, key: readFileSync(cert.key), cert: readFileSync(cert.cert) });
      tls.on('error', () => {});
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const grant = makeGrant('mailer', [`net:mail.test:${port}`, 'secret:PW@mail.test'], [], { WORKSPACE: '/tmp', PLUGIN_DATA: '/tmp' }, [`mail.test:${port}`]);
  const table = createSocketTable({ grant, secrets: mapSecrets({ PW: SECRET }), resolve: async () => [{ address: '127.0.0.1', family: 4 }], secretValues: () => [SECRET], deliver: () => {} });
  t.after(() => table.closeAll());
  const id = await table.connect('mail.test', port, { tls: false });
  await table.write(id, 'STARTTLS\r\n');
  await new Promise((r) => setTimeout(r, 50));
  const upgrading = table.startTls(id).catch((e: Error) => e); // the certificate is not trusted: it fails, later
  await assert.rejects(table.write(id, 'AUTH PLAIN {{secret:PW}}\r\n'), /write during STARTTLS/);
  await upgrading;
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(!clear.join('').includes(SECRET), 'the secret never crossed in clear text');
});
