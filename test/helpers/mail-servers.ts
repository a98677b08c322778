// Real mail servers on loopback for the email channel tests: dovecot (Debian
// `dovecot-imapd`) serving one Maildir user over IMAP, an SMTP sink built on
// Python 3.11's standard `smtpd` module that stores each message it accepts, and
// a real MTA, exim (Debian `exim4-daemon-light`), run as a daemon on a loopback
// port with a generated config that delivers every recipient into one Maildir.
// Tests skip when one is missing.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const haveDovecot = spawnSync('/usr/sbin/dovecot', ['--version']).status === 0;
export const EXIM = '/usr/sbin/exim4';
export const haveExim = spawnSync(EXIM, ['-bV']).status === 0;
export const haveOpenssl = spawnSync('openssl', ['version']).status === 0;

/** A self-signed certificate for 127.0.0.1 and localhost (openssl), readable by a daemon that dropped root. */
export function selfSignedCert(): { cert: string; key: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'cp-cert-'));
  chmodSync(dir, 0o755);
  const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  chmodSync(key, 0o644);
  return { cert, key, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
export const havePythonSmtpd = spawnSync('python3', ['-W', 'ignore', '-c', 'import smtpd']).status === 0;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function waitFor(check: () => boolean, what: string, child: ChildProcess, log: () => string) {
  const deadline = Date.now() + 15_000;
  while (!check()) {
    if (child.exitCode !== null) throw new Error(`${what} exited: ${log()}`);
    if (Date.now() > deadline) throw new Error(`${what} did not start: ${log()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function stopChild(child: ChildProcess) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await gone;
}

export interface Dovecot {
  port: number;
  user: string;
  password: string;
  /** Drop a raw RFC 5322 message into the user's INBOX (Maildir new/). */
  deliver(raw: string): void;
  /** Disconnect the user's IMAP sessions server-side (`doveadm kick`). */
  kick(): void;
  /** What dovecot logged so far (logins, with TLS or not). */
  log(): string;
  stop(): Promise<void>;
}

export async function startDovecot(opts: { password?: string; tls?: { cert: string; key: string } } = {}): Promise<Dovecot> {
  const dir = mkdtempSync(join(tmpdir(), 'cp-dove-'));
  chmodSync(dir, 0o755);
  const user = 'alice';
  const password = opts.password ?? 'imap-pass-123';
  const maildir = join(dir, 'mail', user, 'Maildir');
  for (const sub of ['new', 'cur', 'tmp']) mkdirSync(join(maildir, sub), { recursive: true });
  spawnSync('chmod', ['-R', '0777', join(dir, 'mail')]);
  mkdirSync(join(dir, 'run'));
  const port = await freePort();
  writeFileSync(join(dir, 'users'), `${user}:{PLAIN}${password}\n`);
  const conf = join(dir, 'dovecot.conf');
  writeFileSync(
    conf,
    `protocols = imap
listen = 127.0.0.1
base_dir = ${dir}/run
state_dir = ${dir}/run
log_path = ${dir}/dovecot.log
${opts.tls ? `ssl = yes\nssl_cert = <${opts.tls.cert}\nssl_key = <${opts.tls.key}` : 'ssl = no'}
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:${dir}/mail/%u/Maildir
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
mail_uid = dovecot
mail_gid = dovecot
first_valid_uid = 1
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${dir}/users
}
userdb {
  driver = static
  args = uid=dovecot gid=dovecot home=${dir}/mail/%u
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
`,
  );
  const child = spawn('/usr/sbin/dovecot', ['-F', '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  const log = () => {
    try {
      return out + readFileSync(join(dir, 'dovecot.log'), 'utf8');
    } catch {
      return out;
    }
  };
  await waitFor(() => /starting up/.test(log()), 'dovecot', child, log);
  let n = 0;
  return {
    port,
    user,
    password,
    log,
    deliver(raw) {
      const name = `${Date.now()}.M${++n}P${process.pid}.carapace-test`;
      const tmp = join(maildir, 'tmp', name);
      writeFileSync(tmp, raw.replace(/\r?\n/g, '\r\n'), { mode: 0o666 });
      renameSync(tmp, join(maildir, 'new', name));
    },
    kick() {
      const r = spawnSync('doveadm', ['-c', conf, 'kick', user], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`doveadm kick failed: ${r.stderr}`);
    },
    async stop() {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface SmtpSink {
  port: number;
  /** Raw messages accepted so far, with their envelope. */
  messages(): { from: string; to: string[]; data: string }[];
  waitMessages(n: number, timeoutMs?: number): Promise<{ from: string; to: string[]; data: string }[]>;
  stop(): Promise<void>;
}

const SMTPD = `
import asyncore, json, os, sys, warnings
warnings.simplefilter('ignore')
import smtpd
out, port = sys.argv[1], int(sys.argv[2])
class Sink(smtpd.SMTPServer):
    n = 0
    def process_message(self, peer, mailfrom, rcpttos, data, **kw):
        if any(r.startswith('tempfail') for r in rcpttos):
            return '451 4.3.0 try again later'
        Sink.n += 1
        tmp = os.path.join(out, '.%d.json' % Sink.n)
        with open(tmp, 'w') as f:
            json.dump({'from': mailfrom, 'to': rcpttos, 'data': data.decode('utf-8', 'replace') if isinstance(data, bytes) else data}, f)
        os.rename(tmp, os.path.join(out, '%06d.json' % Sink.n))
Sink(('127.0.0.1', port), None, decode_data=False)
print('listening', flush=True)
asyncore.loop()
`;

export async function startSmtpSink(): Promise<SmtpSink> {
  const dir = mkdtempSync(join(tmpdir(), 'cp-smtp-'));
  const port = await freePort();
  const child = spawn('python3', ['-W', 'ignore', '-c', SMTPD, dir, String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  await waitFor(() => /listening/.test(out), 'smtp sink', child, () => out);
  const messages = () =>
    readdirSync(dir)
      .filter((f) => /^\d+\.json$/.test(f))
      .sort()
      .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as { from: string; to: string[]; data: string });
  return {
    port,
    messages,
    async waitMessages(n, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const m = messages();
        if (m.length >= n) return m;
        if (Date.now() > deadline) throw new Error(`smtp sink has ${m.length}/${n} messages`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async stop() {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * exim as an SMTP server on 127.0.0.1:<free port>: `-C` with a generated config
 * (spool, logs, pid and Maildir in a temp dir), in the foreground (`-bdf`). Run as
 * root, exim gives up root for `-C` and delivers as the `Debian-exim` user;
 * otherwise as the caller. Recipients whose local part starts with `tempfail`
 * get a 4xx at RCPT, like a greylisting server.
 */
export async function startExim(opts: { tls?: { cert: string; key: string } } = {}): Promise<SmtpSink> {
  const dir = mkdtempSync(join(tmpdir(), 'cp-exim-'));
  chmodSync(dir, 0o755);
  const port = await freePort();
  const root = process.getuid?.() === 0;
  const user = root ? 'Debian-exim' : String(spawnSync('id', ['-un'], { encoding: 'utf8' }).stdout).trim();
  for (const sub of ['spool', 'log', 'mail']) mkdirSync(join(dir, sub), { mode: 0o777 });
  for (const sub of ['spool', 'log', 'mail']) chmodSync(join(dir, sub), 0o777);
  const conf = join(dir, 'exim.conf');
  writeFileSync(
    conf,
    `primary_hostname = carapace.test
daemon_smtp_ports = ${port}
local_interfaces = 127.0.0.1
spool_directory = ${dir}/spool
log_file_path = ${dir}/log/%slog
pid_file_path = ${dir}/exim.pid
exim_user = ${user}
exim_group = ${root ? 'Debian-exim' : String(spawnSync('id', ['-gn'], { encoding: 'utf8' }).stdout).trim()}
keep_environment =
${opts.tls ? `tls_advertise_hosts = *\ntls_certificate = ${opts.tls.cert}\ntls_privatekey = ${opts.tls.key}` : 'tls_advertise_hosts ='}
host_lookup =
rfc1413_hosts =
acl_smtp_rcpt = acl_rcpt
begin acl
acl_rcpt:
  defer local_parts = ^tempfail
  accept
begin routers
sink:
  driver = accept
  transport = store
begin transports
store:
  driver = appendfile
  directory = ${dir}/mail
  maildir_format
  user = ${user}
  mode = 0644
  envelope_to_add
  return_path_add
begin retry
* * F,1m,1m
`,
    { mode: 0o644 },
  );
  const child = spawn(EXIM, ['-C', conf, '-bdf', '-q1h'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  const log = () => {
    try {
      return out + readFileSync(join(dir, 'log', 'mainlog'), 'utf8');
    } catch {
      return out;
    }
  };
  await waitFor(() => /listening for SMTP/.test(log()), 'exim', child, log);
  const newDir = join(dir, 'mail', 'new');
  const messages = () => {
    let files: string[] = [];
    try {
      // Maildir names start `<seconds>.M<microseconds>P<pid>`: order by both, numerically.
      const key = (f: string) => (/^(\d+)\.M(\d+)/.exec(f) ?? [0, 0, 0]).slice(1).map(Number);
      files = readdirSync(newDir).sort((a, b) => key(a)[0] - key(b)[0] || key(a)[1] - key(b)[1]);
    } catch {
      return [];
    }
    return files.map((f) => {
      const data = readFileSync(join(newDir, f), 'utf8');
      const head = data.split(/\r?\n\r?\n/, 1)[0].replace(/\r?\n[ \t]+/g, ' ');
      const from = /^Return-path: <([^>]*)>/im.exec(head)?.[1] ?? '';
      const to = (/^Envelope-to: (.*)$/im.exec(head)?.[1] ?? '').split(',').map((a) => a.trim()).filter(Boolean);
      return { from, to, data };
    });
  };
  return {
    port,
    messages,
    async waitMessages(n, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const m = messages();
        if (m.length >= n) return m;
        if (Date.now() > deadline) throw new Error(`exim delivered ${m.length}/${n} messages: ${log()}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async stop() {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
