// A real ngircd (Debian package `ngircd`) on a loopback port with a generated
// config, and a raw-socket IRC client to play the human. Tests skip when the
// binary is missing (it is in .ci/apt-packages).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signal } from './wait.ts';

export const NGIRCD = '/usr/sbin/ngircd';
export const haveNgircd = spawnSync(NGIRCD, ['--version']).status === 0;

export interface Ngircd {
  port: number;
  password: string;
  oper: { name: string; password: string };
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export async function startNgircd(opts: { pingTimeoutSec?: number; password?: string } = {}): Promise<Ngircd> {
  const dir = mkdtempSync(join(tmpdir(), 'carapace-ngircd-'));
  chmodSync(dir, 0o755); // ngircd drops to nobody after reading its config
  const port = await freePort();
  const password = opts.password ?? 'server-sekret';
  const oper = { name: 'admin', password: 'oper-sekret' };
  const conf = join(dir, 'ngircd.conf');
  writeFileSync(
    conf,
    `[Global]
Name = irc.carapace.test
Info = Carapace test server
AdminInfo1 = test
AdminInfo2 = test
AdminEMail = test@example.invalid
Listen = 127.0.0.1
Ports = ${port}
Password = ${password}
MotdPhrase = test server
[Limits]
MaxNickLength = 30
PingTimeout = ${opts.pingTimeoutSec ?? 120}
PongTimeout = 20
ConnectRetry = 60
[Options]
PAM = no
Ident = no
DNS = no
[Operator]
Name = ${oper.name}
Password = ${oper.password}
[Channel]
Name = #carapace
Topic = test channel
`,
  );
  const child: ChildProcess = spawn(NGIRCD, ['-n', '-f', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout?.on('data', (d) => (log += d));
  child.stderr?.on('data', (d) => (log += d));
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`ngircd exited: ${log}`);
    if (/Now listening on/.test(log)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`ngircd did not start: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    port,
    password,
    oper,
    async stop() {
      if (child.exitCode === null) {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await gone;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface IrcLine {
  prefix: string;
  command: string;
  params: string[];
  raw: string;
}

function parse(raw: string): IrcLine {
  let rest = raw;
  let prefix = '';
  if (rest.startsWith(':')) {
    const sp = rest.indexOf(' ');
    prefix = rest.slice(1, sp);
    rest = rest.slice(sp + 1);
  }
  const trailing = rest.indexOf(' :');
  const head = trailing >= 0 ? rest.slice(0, trailing) : rest;
  const params = head.split(' ').filter(Boolean);
  if (trailing >= 0) params.push(rest.slice(trailing + 2));
  return { prefix, command: (params.shift() ?? '').toUpperCase(), params, raw };
}

/** A human on IRC over a raw socket. */
export interface IrcHuman {
  nick: string;
  lines: IrcLine[];
  send(line: string): void;
  waitFor(pred: (l: IrcLine) => boolean, timeoutMs?: number, from?: number): Promise<IrcLine>;
  close(): void;
}

export async function connectHuman(port: number, nick: string, password: string): Promise<IrcHuman> {
  const sock: Socket = connect({ host: '127.0.0.1', port });
  sock.setEncoding('utf8');
  const lines: IrcLine[] = [];
  const arrived = signal();
  let buf = '';
  sock.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const raw = buf.slice(0, i).replace(/\r$/, '');
      buf = buf.slice(i + 1);
      const l = parse(raw);
      if (l.command === 'PING') sock.write(`PONG :${l.params[0] ?? ''}\r\n`);
      lines.push(l);
    }
    arrived.notify();
  });
  sock.on('error', () => {});
  await new Promise<void>((r) => sock.once('connect', () => r()));
  const human: IrcHuman = {
    nick,
    lines,
    send: (line) => void sock.write(line + '\r\n'),
    waitFor(pred, timeoutMs = 10_000, from = 0) {
      return arrived.wait(() => lines.slice(from).find(pred), () => `${nick}: no matching line; got ${lines.map((l) => l.raw).join(' | ')}`, timeoutMs);
    },
    close: () => sock.destroy(),
  };
  human.send(`PASS ${password}`);
  human.send(`NICK ${nick}`);
  human.send(`USER ${nick} 0 * :A human`);
  await human.waitFor((l) => l.command === '001');
  return human;
}
