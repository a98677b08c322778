import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { CliError, UsageError } from '../errors.ts';
import { homePaths, resolveHome, type HomePaths } from '../home.ts';

export interface CliIO {
  home: string;
  paths: HomePaths;
  json: boolean;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  isTTY: boolean;
  /** Print a line for people; suppressed under --json. */
  say(text: string): void;
  /** The one JSON document of a --json run. */
  emit(value: unknown): void;
}

export interface ParsedArgs {
  positionals: string[];
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
}

export interface Verb {
  usage: string;
  options?: ParseArgsOptionsConfig;
  /** Return an exit code; throw CliError for failures (one line on stderr). */
  run(io: CliIO, args: ParsedArgs): Promise<number | void>;
}

interface VerbEntry {
  summary: string;
  load: () => Promise<{ verb: Verb }>;
}

// Loaded on demand: `carapace start` must not pay for importing every other verb.
const VERBS: Record<string, VerbEntry> = {
  start: { summary: 'run the gateway in the foreground', load: () => import('./verbs/start.ts') },
  status: { summary: 'is the gateway up; plugins, channels, sessions, queue', load: () => import('./verbs/status.ts') },
  config: { summary: 'get, set or validate config.json', load: () => import('./verbs/config.ts') },
  chat: { summary: 'send a message to an agent and stream the reply (a REPL without MESSAGE)', load: () => import('./verbs/chat.ts') },
  secrets: { summary: 'the encrypted secrets store: set NAME (value from stdin), list, remove', load: () => import('./verbs/secrets.ts') },
  plugins: { summary: 'list, install, remove, verify plugins; grant permissions', load: () => import('./verbs/plugins.ts') },
  devices: { summary: 'pair, list and revoke devices (CLI, UI, phones, nodes)', load: () => import('./verbs/devices.ts') },
  doctor: { summary: 'audit this installation for risky settings; --fix repairs what is safe', load: () => import('./verbs/doctor.ts') },
  cron: { summary: 'scheduled agent turns: list, add, remove, run', load: () => import('./verbs/cron.ts') },
  audit: { summary: 'the hash-chained audit log: list with filters, or verify', load: () => import('./verbs/audit.ts') },
  backup: { summary: 'consistent snapshot of the state directory into one file; backup restore FILE', load: () => import('./verbs/backup.ts') },
  restore: { summary: 'restore a backup into the home (gateway stopped)', load: () => import('./verbs/restore.ts') },
  service: { summary: 'run the gateway as a systemd user unit (Linux) or launchd agent (macOS): install, uninstall, status', load: () => import('./verbs/service.ts') },
  approvals: { summary: 'pending tool approvals: list, approve, deny', load: () => import('./verbs/approvals.ts') },
  memory: { summary: 'the long-term memory index: status, index, search', load: () => import('./verbs/memory.ts') },
  registry: { summary: 'serve a ClawHub-compatible skill and plugin registry; mint publish tokens', load: () => import('./verbs/registry.ts') },
  skills: { summary: 'search, install, remove, list and verify workspace skills', load: () => import('./verbs/skills.ts') },
  keygen: { summary: 'create an ed25519 publisher key file', load: () => import('./verbs/keygen.ts') },
  plugin: { summary: 'write a plugin: init KIND NAME, pack, sign --key FILE, publish --registry URL', load: () => import('./verbs/plugin.ts') },
  trust: { summary: 'list, add or remove trusted publisher keys', load: () => import('./verbs/trust.ts') },
  pairing: { summary: 'chat senders waiting for DM access: list, approve CHANNEL CODE, reject CHANNEL CODE', load: () => import('./verbs/pairing.ts') },
  sessions: { summary: 'conversations: list, show KEY (the transcript), reset KEY', load: () => import('./verbs/sessions.ts') },
  logs: { summary: "the gateway's log; --follow streams it, --session KEY filters", load: () => import('./verbs/logs.ts') },
  channels: { summary: 'channels status: each channel plugin\'s state and last error, and the outbound queue', load: () => import('./verbs/channels.ts') },
};

const GLOBAL_OPTIONS: ParseArgsOptionsConfig = {
  home: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

export function registerVerb(name: string, entry: VerbEntry): void {
  VERBS[name] = entry;
}

function topHelp(): string {
  const width = Math.max(...Object.keys(VERBS).map((v) => v.length));
  return [
    'usage: carapace <verb> [options]',
    '',
    'verbs:',
    ...Object.entries(VERBS).map(([name, v]) => `  ${name.padEnd(width)}  ${v.summary}`),
    '',
    'global options:',
    '  --home DIR   state directory (default $CARAPACE_HOME or ~/.carapace)',
    '  --json       print one JSON document on stdout',
    '  -h, --help   help for a verb: carapace <verb> --help',
  ].join('\n');
}

/** Global options may come before the verb too (`carapace --home /srv/c status`): they are moved after it. */
function verbFirst(argv: string[]): string[] {
  let i = 0;
  while (i < argv.length) {
    if (argv[i] === '--json' || argv[i].startsWith('--home=')) i++;
    else if (argv[i] === '--home' && i + 1 < argv.length) i += 2;
    else break;
  }
  return [...argv.slice(i, i + 1), ...argv.slice(0, i), ...argv.slice(i + 1)];
}

export interface MainStreams {
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
  stdin?: NodeJS.ReadableStream & { isTTY?: boolean };
}

export async function main(argv: string[], streams: MainStreams = {}): Promise<number> {
  process.umask(0o077); // everything in the state directory is the owner's alone
  const stdout = streams.stdout ?? process.stdout;
  const stderr = streams.stderr ?? process.stderr;
  const stdin = streams.stdin ?? process.stdin;
  const [name, ...rest] = verbFirst(argv);
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    stdout.write(topHelp() + '\n');
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    const { VERSION } = await import('../version.ts');
    stdout.write(VERSION + '\n');
    return 0;
  }
  const entry = VERBS[name];
  if (!entry) {
    stderr.write(`carapace: unknown verb "${name}"; see carapace --help\n`);
    return 2;
  }
  const { verb } = await entry.load();
  let parsed: ParsedArgs;
  try {
    parsed = parseArgs({ args: rest, options: { ...GLOBAL_OPTIONS, ...verb.options }, allowPositionals: true, strict: true });
  } catch (err) {
    stderr.write(`carapace ${name}: ${(err as Error).message}\n${verb.usage}\n`);
    return 2;
  }
  if (parsed.values.help) {
    stdout.write(verb.usage + '\n');
    return 0;
  }
  const json = parsed.values.json === true;
  const home = resolveHome(parsed.values.home as string | undefined);
  const io: CliIO = {
    home,
    paths: homePaths(home),
    json,
    stdout,
    stderr,
    stdin,
    isTTY: Boolean((stdout as { isTTY?: boolean }).isTTY),
    say: (text) => {
      if (!json) stdout.write(text + '\n');
    },
    emit: (value) => {
      stdout.write(JSON.stringify(value, null, json ? 2 : 0) + '\n');
    },
  };
  try {
    return (await verb.run(io, parsed)) ?? 0;
  } catch (err) {
    if (err instanceof CliError) {
      stderr.write(`carapace ${name}: ${err.message}\n${err instanceof UsageError ? verb.usage + '\n' : ''}`);
      return err.exitCode;
    }
    const e = err as Error;
    stderr.write(`carapace ${name}: ${e.message || String(e)}\n`);
    if (process.env.CARAPACE_DEBUG) stderr.write(`${e.stack}\n`);
    return 1;
  }
}
