import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { haveDovecot, haveExim, haveOpenssl, havePythonSmtpd, selfSignedCert, startDovecot, startExim, startSmtpSink, type SmtpSink } from '../helpers/mail-servers.ts';
import { startChannelGateway, pairingCode } from '../helpers/channel-gateway.ts';
import { until } from '../helpers/wait.ts';
import { TEST_SECRETS } from '../helpers/test-secrets.ts';

// E-mail through the whole gateway: the plugin in its isolate watches a real
// dovecot INBOX over IMAP and sends through SMTP; an unknown sender is asked to
// pair, and after approval the agent's answer is a threaded reply (Re:,
// In-Reply-To, References) to the sender — also after dovecot kicks the IMAP
// session mid-conversation.

const skip = !haveDovecot ? 'dovecot is not installed (dovecot-imapd, listed in .ci/apt-packages)' : !havePythonSmtpd ? "python3 with the smtpd module is not installed" : false;

let seq = 0;
function mail(o: { from: string; subject: string; body: string; inReplyTo?: string; references?: string }) {
  const id = `<e2e${++seq}.${Date.now()}@example.org>`;
  const lines = [`From: ${o.from}`, 'To: agent@carapace.test', `Subject: ${o.subject}`, `Message-ID: ${id}`, `Date: ${new Date().toUTCString()}`, 'MIME-Version: 1.0'];
  if (o.inReplyTo) lines.push(`In-Reply-To: ${o.inReplyTo}`, `References: ${o.references ?? o.inReplyTo}`);
  lines.push('Content-Type: text/plain; charset=utf-8', '', o.body);
  return { raw: lines.join('\r\n') + '\r\n', id };
}

interface Sent { to: string[]; data: string; header(name: string): string | undefined; body: string }
function parse(m: { to: string[]; data: string }): Sent {
  const [head, ...rest] = m.data.replace(/\r\n/g, '\n').split('\n\n');
  const unfolded = head.replace(/\n[ \t]+/g, ' ');
  const body = rest.join('\n\n');
  const decoded = /Content-Transfer-Encoding: base64/i.test(unfolded) ? Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8') : body;
  return { to: m.to, data: m.data, body: decoded, header: (name) => new RegExp(`^${name}: (.*)$`, 'im').exec(unfolded)?.[1].trim() };
}

async function emailGateway(t: TestContext, opts: { smtp?: () => Promise<SmtpSink>; channel?: Record<string, unknown>; smtpConfig?: Record<string, unknown>; imapConfig?: Record<string, unknown>; imapTls?: { cert: string; key: string }; env?: NodeJS.ProcessEnv } = {}) {
  const imap = await startDovecot({ password: TEST_SECRETS.imapPassword, tls: opts.imapTls });
  t.after(() => imap.stop());
  const smtp = await (opts.smtp ?? startSmtpSink)();
  t.after(() => smtp.stop());
  const cg = await startChannelGateway(t, {
    name: 'email',
    channels: {
      email: {
        enabled: true,
        dmPolicy: 'pairing',
        from: 'agent@carapace.test',
        backfill: true,
        retryBaseMs: 100,
        imap: { host: '127.0.0.1', port: imap.port, tls: false, user: imap.user, ...opts.imapConfig },
        smtp: { host: '127.0.0.1', port: smtp.port, tls: false, ...opts.smtpConfig },
        ...opts.channel,
      },
    },
    secrets: { IMAP_PASSWORD: imap.password },
    env: opts.env,
  });
  const sent = () => smtp.messages().map(parse);
  return { imap, smtp, sent, ...cg };
}

test('email: an unknown sender gets one pairing code, nothing reaches the agent before approval, then the answer is a threaded reply to the sender — also after dovecot kicks the IMAP session, exactly once', { skip }, async (t) => {
  const { imap, sent, gw, llm, agentSaw, approve } = await emailGateway(t);
  const bob = '"Bob Example" <bob@example.org>';
  const to = (addr: string) => sent().filter((m) => m.to.includes(addr));

  imap.deliver(mail({ from: bob, subject: 'Hello', body: 'hello?' }).raw);
  const code = pairingCode((await until('the pairing code', () => to('bob@example.org')[0])).body);
  imap.deliver(mail({ from: bob, subject: 'Hello again', body: 'hello again?' }).raw);
  imap.deliver(mail({ from: 'carol@example.org', subject: 'Me too', body: 'me too' }).raw); // the barrier
  await until("the second sender's code", () => to('carol@example.org')[0]);
  assert.equal(to('bob@example.org').length, 1, 'the code is sent once, not on every mail');
  assert.equal(llm.requests.length, 0, 'nothing reached the agent before approval');

  await approve('email', code);
  await until('the paired notice', () => to('bob@example.org').find((m) => /paired/.test(m.body)));
  const q = mail({ from: bob, subject: 'A question', body: 'can you hear me?' });
  imap.deliver(q.raw);
  const reply = await until('the agent reply', () => to('bob@example.org').find((m) => /echo: .*can you hear me\?/s.test(m.body)));
  assert.equal(reply.header('Subject'), 'Re: A question');
  assert.equal(reply.header('In-Reply-To'), q.id, 'the reply answers the mail it is about');
  assert.ok(reply.header('References')?.includes(q.id), 'and carries it in References');
  assert.match(reply.header('To') ?? '', /bob@example\.org/);
  assert.equal(agentSaw().length, 1, 'mails refused before pairing never reach the agent');
  assert.match(agentSaw()[0], /can you hear me\?/);
  assert.doesNotMatch(agentSaw()[0], /hello again/);

  // dovecot drops the session; a reply to the thread arrives meanwhile.
  imap.kick();
  const replyId = reply.header('Message-ID')!;
  const q2 = mail({ from: bob, subject: 'Re: A question', body: 'said while the session was kicked', inReplyTo: replyId, references: `${q.id} ${replyId}` });
  imap.deliver(q2.raw);
  const reply2 = await until('the reply after the kick', () => to('bob@example.org').find((m) => /echo: said while the session was kicked/.test(m.body)));
  assert.equal(reply2.header('In-Reply-To'), q2.id);
  assert.equal(gw.output().match(/email: imap ready/g)?.length, 2, 'the plugin logged in again after the kick');
  assert.ok(reply2.header('References')?.includes(q.id), 'still the same thread');
  const q3 = mail({ from: bob, subject: 'Re: A question', body: 'and one more', inReplyTo: reply2.header('Message-ID')! });
  imap.deliver(q3.raw);
  await until('the last reply', () => to('bob@example.org').find((m) => /echo: and one more/.test(m.body)));

  const answers = to('bob@example.org').filter((m) => /^echo: /.test(m.body.trim())).map((m) => m.header('In-Reply-To'));
  assert.deepEqual(answers, [q.id, q2.id, q3.id], 'every mail answered exactly once, in order');
  assert.equal(agentSaw().length, 3);
  assert.doesNotMatch(gw.output(), new RegExp(imap.password), 'the IMAP password is in no log line');
  assert.equal((await gw.stop()).code, 0);
});

test('email through a real MTA: the agent\'s threaded reply to an allowlisted sender is accepted and delivered by exim, once', { skip: skip || (haveExim ? false : 'exim is not installed (exim4-daemon-light, listed in .ci/apt-packages)') }, async (t) => {
  const { imap, smtp, sent, gw } = await emailGateway(t, { smtp: startExim, channel: { dmPolicy: 'allowlist', allowFrom: ['bob@example.org'] } });
  const q = mail({ from: 'Bob <bob@example.org>', subject: 'Through the MTA', body: 'are you there?' });
  imap.deliver(q.raw);
  const [delivered] = await smtp.waitMessages(1, 20_000);
  const reply = sent()[0];
  assert.deepEqual(delivered.to, ['bob@example.org']);
  assert.equal(delivered.from, 'agent@carapace.test', 'the envelope sender is the configured address');
  assert.match(delivered.data, /^Received: from \[127\.0\.0\.1\]/im, 'exim accepted it over SMTP');
  assert.match(reply.body, /^echo: .*are you there\?/s);
  assert.equal(reply.header('Subject'), 'Re: Through the MTA');
  assert.equal(reply.header('In-Reply-To'), q.id);
  const q2 = mail({ from: 'Bob <bob@example.org>', subject: 'Re: Through the MTA', body: 'second', inReplyTo: reply.header('Message-ID')!, references: `${q.id} ${reply.header('Message-ID')}` });
  imap.deliver(q2.raw);
  await smtp.waitMessages(2, 20_000);
  assert.deepEqual(sent().map((m) => m.header('In-Reply-To')), [q.id, q2.id], 'one delivery per mail, threaded');
  assert.equal((await gw.stop()).code, 0);
});

const skipTls = skip || (!haveExim ? 'exim is not installed (exim4-daemon-light, listed in .ci/apt-packages)' : !haveOpenssl ? 'openssl is not installed' : false);

test('email over STARTTLS both ways: mail read from dovecot and the reply sent to exim inside TLS, on a certificate the gateway verifies', { skip: skipTls }, async (t) => {
  const cert = selfSignedCert();
  t.after(cert.cleanup);
  const { imap, smtp, gw } = await emailGateway(t, {
    smtp: () => startExim({ tls: cert }),
    smtpConfig: { tls: 'starttls' },
    imapTls: cert,
    imapConfig: { tls: 'starttls' },
    channel: { dmPolicy: 'allowlist', allowFrom: ['bob@example.org'] },
    env: { NODE_EXTRA_CA_CERTS: cert.cert }, // the gateway trusts this certificate and no other self-signed one
  });
  imap.deliver(mail({ from: 'Bob <bob@example.org>', subject: 'Private', body: 'over TLS please' }).raw);
  const [delivered] = await smtp.waitMessages(1, 20_000);
  assert.match(delivered.data, /^Received: from \[127\.0\.0\.1\][^]*with esmtps\s+\(TLS1\.[23]/im, 'exim received it inside TLS');
  assert.match(imap.log(), /imap-login: Info: Login: user=<alice>, .*\bTLS\b/, 'dovecot saw the login inside TLS');
  assert.equal((await gw.stop()).code, 0);
});

test('email over STARTTLS refuses a server that does not offer it (a stripped EHLO): nothing is sent in clear text', { skip: skipTls }, async (t) => {
  const { imap, smtp, gw } = await emailGateway(t, { smtp: () => startExim(), smtpConfig: { tls: 'starttls' }, channel: { dmPolicy: 'allowlist', allowFrom: ['bob@example.org'] } });
  imap.deliver(mail({ from: 'Bob <bob@example.org>', subject: 'Private', body: 'secret plans' }).raw);
  await until('the refusal in the log', () => /does not offer STARTTLS/.test(gw.output()), 20_000);
  assert.equal(smtp.messages().length, 0);
});

test('email over STARTTLS refuses a server whose certificate it cannot verify: nothing is sent', { skip: skipTls }, async (t) => {
  const cert = selfSignedCert();
  t.after(cert.cleanup);
  const { imap, smtp, gw } = await emailGateway(t, { smtp: () => startExim({ tls: cert }), smtpConfig: { tls: 'starttls' }, channel: { dmPolicy: 'allowlist', allowFrom: ['bob@example.org'] } });
  imap.deliver(mail({ from: 'Bob <bob@example.org>', subject: 'Private', body: 'secret plans' }).raw);
  await until('the certificate refusal in the log', () => /TLS handshake with 127\.0\.0\.1:\d+ failed: .*(SELF_SIGNED|self-signed)/i.test(gw.output()), 20_000);
  assert.equal(smtp.messages().length, 0);
});

test('IMAP over STARTTLS refuses a server that does not offer it: the password is never sent in clear text', { skip: skipTls }, async (t) => {
  const { imap, gw } = await emailGateway(t, { imapConfig: { tls: 'starttls' } });
  await until('the refusal in the log', () => /imap: server does not offer STARTTLS/.test(gw.output()), 20_000);
  assert.doesNotMatch(imap.log(), /Login: user=/, 'no login reached the server');
});
