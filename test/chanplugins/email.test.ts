import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { createServer, type AddressInfo } from 'node:net';
import { createSandbox, type Sandbox } from '../helpers/plugin-sandbox-stub.ts';
import { haveDovecot, havePythonSmtpd, startDovecot, startSmtpSink, type Dovecot, type SmtpSink } from '../helpers/mail-servers.ts';
import { assertInbound } from '../helpers/inbound-shape.ts';
import { parseMail, htmlToText, b64encode, b64decode, utf8Encode, utf8Decode } from '../../plugins/channels/email/index.js';
import type * as Email from '../../plugins/channels/email/index.js';

const ENTRY = fileURLToPath(new URL('../../plugins/channels/email/index.js', import.meta.url));
type Plugin = typeof Email;
const skip = haveDovecot && havePythonSmtpd ? false : 'needs dovecot-imapd and python3 (smtpd) — see .ci/apt-packages';

let imap: Dovecot;
let smtp: SmtpSink;
before(async () => {
  if (skip) return;
  imap = await startDovecot();
  smtp = await startSmtpSink();
});
after(async () => {
  await imap?.stop();
  await smtp?.stop();
});
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let seq = 0;
function mail(o: { from?: string; subject?: string; body?: string; id?: string; inReplyTo?: string; references?: string; html?: boolean } = {}) {
  const id = o.id ?? `<m${++seq}.${Date.now()}@example.org>`;
  const lines = [
    `From: ${o.from ?? '"Bob Example" <bob@example.org>'}`,
    'To: agent@carapace.test',
    `Subject: ${o.subject ?? 'Hello'}`,
    `Message-ID: ${id}`,
    'Date: Sat, 21 Nov 2026 10:00:00 +0000',
    'MIME-Version: 1.0',
  ];
  if (o.inReplyTo) lines.push(`In-Reply-To: ${o.inReplyTo}`);
  if (o.references) lines.push(`References: ${o.references}`);
  lines.push(`Content-Type: ${o.html ? 'text/html' : 'text/plain'}; charset=utf-8`, '', o.body ?? 'Body text');
  return { raw: lines.join('\r\n') + '\r\n', id };
}

async function plugin(config: Record<string, unknown> = {}, kv?: Map<string, unknown>) {
  const sb = createSandbox({
    config: {
      from: 'agent@carapace.test',
      allowFrom: ['bob@example.org'],
      imap: { host: '127.0.0.1', port: imap.port, tls: false, user: imap.user, ...((config.imap as object) ?? {}) },
      smtp: { host: '127.0.0.1', port: smtp.port, tls: false },
      retryBaseMs: 100,
      ...Object.fromEntries(Object.entries(config).filter(([k]) => k !== 'imap')),
    },
    secrets: { IMAP_PASSWORD: imap.password },
    kv,
  });
  const p = sb.load<Plugin>(ENTRY);
  cleanups.push(async () => {
    await p.stop();
    sb.close();
  });
  await p.start({ config: sb.carapace.config });
  return { sb, p };
}

async function inbound(sb: Sandbox, n: number) {
  return (await sb.waitForPublished('channel.inbound', n, 15_000)).map(assertInbound);
}
async function waitLog(sb: Sandbox, re: RegExp, count = 1) {
  for (let i = 0; i < 1500; i++) {
    if (sb.logs.filter((l) => re.test(l.msg)).length >= count) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`no log ${re}; have ${JSON.stringify(sb.logs)}`);
}

test('codecs round-trip UTF-8 and base64 without Node APIs', () => {
  const s = 'héllo 🦀 — ok';
  assert.equal(utf8Decode(utf8Encode(s)), s);
  assert.equal(b64encode(utf8Encode(s)), Buffer.from(s).toString('base64'));
  assert.equal(utf8Decode(b64decode(Buffer.from(s).toString('base64'))), s);
});

test('mail parsing: HTML-only multipart becomes text, encoded subjects decode, quoted history is dropped, threads come from References', () => {
  const raw = [
    'From: =?UTF-8?B?w4lsaXNl?= <Elise@Example.org>',
    'Subject: =?UTF-8?Q?Caf=C3=A9_plans?=',
    'Message-ID: <c3@example.org>',
    'In-Reply-To: <c2@example.org>',
    'References: <c1@example.org> <c2@example.org>',
    'Content-Type: multipart/alternative; boundary="XYZ"',
    '',
    '--XYZ',
    'Content-Type: text/html; charset=utf-8',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    '<html><head><style>p{}</style></head><body><p>Caf=C3=A9 at <b>noon</b>&amp; then</p><p>On Mon, Bob wrote:</p></body></html>',
    '--XYZ--',
    '',
  ].join('\r\n');
  const m = parseMail(raw);
  assert.equal(m.from, 'elise@example.org');
  assert.equal(m.fromName, 'Élise');
  assert.equal(m.subject, 'Café plans');
  assert.equal(m.text, 'Café at noon& then');
  assert.equal(m.threadRoot, '<c1@example.org>');
  assert.equal(m.inReplyTo, '<c2@example.org>');
  assert.equal(htmlToText('<ul><li>a</li><li>b</li></ul>'), '- a\n- b');
});

test('mail from an allowed sender arrives as an InboundMessage threaded by Message-ID; other senders are dropped', { skip }, async () => {
  const { sb } = await plugin();
  await waitLog(sb, /imap ready/);
  imap.deliver(mail({ from: 'mallory@evil.example', subject: 'spam' }).raw);
  const { id } = mail();
  imap.deliver(mail({ id, subject: 'Question', body: 'What is on today?' }).raw);
  const [m] = await inbound(sb, 1);
  assert.equal(m.channel, 'email');
  assert.equal(m.chatType, 'direct');
  assert.equal(m.chatId, 'bob@example.org');
  assert.equal(m.sender.name, 'Bob Example');
  assert.equal(m.threadId, id);
  assert.equal(m.platformMessageId, id);
  assert.equal(m.text, 'Question\n\nWhat is on today?');
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(sb.published.length, 1, 'the disallowed sender is not published');
});

test('without IDLE the plugin polls and still delivers new mail', { skip }, async () => {
  const { sb } = await plugin({ imap: { idle: false, pollIntervalMs: 100 } });
  await waitLog(sb, /imap ready/);
  imap.deliver(mail({ body: 'polled' }).raw);
  const ms = await inbound(sb, 1);
  assert.equal(ms.at(-1)?.text, 'Hello\n\npolled');
});

test('a restart continues after the last seen UID; a dropped IMAP connection reconnects without loss or repeats', { skip }, async () => {
  const kv = new Map<string, unknown>();
  const first = await plugin({}, kv);
  await waitLog(first.sb, /imap ready/);
  imap.deliver(mail({ body: 'one' }).raw);
  await inbound(first.sb, 1);
  await first.p.stop();
  first.sb.close();
  imap.deliver(mail({ body: 'two (while stopped)' }).raw);
  const second = await plugin({}, kv);
  await inbound(second.sb, 1);
  await waitLog(second.sb, /imap ready/);
  imap.kick();
  await waitLog(second.sb, /imap connection failed/);
  imap.deliver(mail({ body: 'three (while down)' }).raw);
  await inbound(second.sb, 2);
  imap.deliver(mail({ body: 'four' }).raw);
  await inbound(second.sb, 3);
  await waitLog(second.sb, /imap ready/, 2);
  assert.deepEqual(second.sb.published.map((p) => (p.payload as { text: string }).text), ['Hello\n\ntwo (while stopped)', 'Hello\n\nthree (while down)', 'Hello\n\nfour']);
});

test('send replies over SMTP in the same thread: Re: subject, In-Reply-To and References; a redelivery is sent once', { skip }, async () => {
  const { sb, p } = await plugin();
  await waitLog(sb, /imap ready/);
  const root = mail({ subject: 'Trip', body: 'Where to?' });
  imap.deliver(root.raw);
  const [m] = await inbound(sb, 1);
  const before = smtp.messages().length;
  const r1 = await p.send({ channel: 'email', chatId: m.chatId, threadId: m.threadId, replyTo: m.platformMessageId, text: 'To the sea — 🌊', idempotencyKey: 'reply-1' });
  const r2 = await p.send({ channel: 'email', chatId: m.chatId, threadId: m.threadId, replyTo: m.platformMessageId, text: 'To the sea — 🌊', idempotencyKey: 'reply-1' });
  assert.equal(r1.platformMessageId, r2.platformMessageId);
  const msgs = await smtp.waitMessages(before + 1);
  assert.equal(smtp.messages().length, before + 1);
  const sent = msgs.at(-1)!;
  assert.equal(sent.from, 'agent@carapace.test');
  assert.deepEqual(sent.to, ['bob@example.org']);
  assert.match(sent.data, /^Subject: Re: Trip$/m);
  assert.match(sent.data, new RegExp(`^In-Reply-To: ${root.id.replace(/[.]/g, '\\.')}$`, 'm'));
  assert.match(sent.data, new RegExp(`^References: .*${root.id.replace(/[.]/g, '\\.')}`, 'm'));
  assert.match(sent.data, new RegExp(`^Message-ID: ${r1.platformMessageId!.replace(/[.]/g, '\\.')}$`, 'm'));
  const body = sent.data.split(/\r?\n\r?\n/)[1].replace(/\s/g, '');
  assert.equal(Buffer.from(body, 'base64').toString('utf8'), 'To the sea — 🌊');
});

test('an SMTP 4xx surfaces as retryable; a bad address is final', { skip }, async () => {
  const { p } = await plugin();
  await assert.rejects(p.send({ channel: 'email', chatId: 'tempfail@example.org', text: 'x', idempotencyKey: 't' }), { retryable: true });
  await assert.rejects(p.send({ channel: 'email', chatId: 'not an address', text: 'x', idempotencyKey: 'u' }), { retryable: false });
});

test('placeholders planted in a mail (subject, Message-ID, sender address) never become secrets in the SMTP conversation', { skip }, async () => {
  const { sb, p } = await plugin({ allowFrom: ['*'] });
  await waitLog(sb, /imap ready/);
  const root = mail({ subject: 'Hi {{secret:IMAP_PASSWORD}}', body: 'x', id: '<{{secret:IMAP_PASSWORD}}@evil.example>' });
  imap.deliver(root.raw);
  const [m] = await inbound(sb, 1);
  const before = smtp.messages().length;
  await p.send({ channel: 'email', chatId: m.chatId, threadId: m.threadId, replyTo: m.platformMessageId, text: 'ok', idempotencyKey: 'planted-1' });
  const sent = (await smtp.waitMessages(before + 1)).at(-1)!;
  assert.ok(!sent.data.includes(imap.password), 'no secret in the headers');
  await assert.rejects(
    p.send({ channel: 'email', chatId: '{{secret:IMAP_PASSWORD}}@evil.example', text: 'ok', idempotencyKey: 'planted-2' }),
    (e: { retryable?: boolean }) => e.retryable === false,
  );
  assert.ok(smtp.messages().every((x) => !x.to.join(' ').includes(imap.password)), 'no secret as a recipient');
});

test('STARTTLS: clear text injected after the go-ahead (CVE-2011-0411 style) makes the plugin refuse before any handshake', { skip }, async () => {
  // A man in the middle appends a command answer to the server's "220 go ahead".
  const mitm = createServer((sock) => {
    sock.write('220 mx.example ESMTP\r\n');
    sock.on('data', (d) => {
      const line = d.toString();
      if (/^EHLO/i.test(line)) sock.write('250-mx.example\r\n250 STARTTLS\r\n');
      else if (/^STARTTLS/i.test(line)) sock.write('220 go ahead\r\n250 2.0.0 injected in clear text\r\n');
    });
  });
  await new Promise<void>((r) => mitm.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => mitm.close(() => r())));
  const { p } = await plugin({ smtp: { host: '127.0.0.1', port: (mitm.address() as AddressInfo).port, tls: 'starttls' } });
  await assert.rejects(p.send({ channel: 'email', chatId: 'bob@example.org', text: 'secret plans', idempotencyKey: 'mitm-1' }), (e: Error & { retryable?: boolean }) => {
    assert.match(e.message, /sent data after its STARTTLS go-ahead/);
    assert.equal(e.retryable, false);
    return true;
  });
});
