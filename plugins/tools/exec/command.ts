import { realpathSync, statSync, constants, accessSync } from 'node:fs';
import { isAbsolute, join, normalize } from 'node:path';

// Turning what the model asked for into an argv we are willing to run, and
// checking it against the allowlist. Everything here works on the parsed argv
// and the resolved program file, never on string prefixes: OpenClaw's allowlist
// was bypassed with `env -S`, `$(...)`, backticks, `;`, `&&`, globs and path
// spellings like `/usr/bin/../bin/rm` or `./ls`.

/** The fixed PATH programs are resolved against (outside the sandbox, never the workspace). */
export const SAFE_PATH = ['/usr/local/bin', '/usr/bin', '/bin', '/usr/local/sbin', '/usr/sbin', '/sbin'];

export class CommandRefused extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.name = 'CommandRefused';
    this.reason = reason;
  }
}

// Characters a shell would give meaning to. A string command containing any of
// them is refused outright, even inside quotes: a person approving `echo "$(id)"`
// should not have to know which quoting rules we implement.
const SHELL_META = /[$`;&|<>(){}\[\]*?~!#\\\n\r\t\x00]/;

/** Split a plain command string into argv: words separated by spaces, '...' and "..." quoting, nothing else. */
export function parseCommandString(command: string): string[] {
  const bad = SHELL_META.exec(command);
  if (bad) {
    throw new CommandRefused(
      'shell-metacharacter',
      `command refused: it contains the shell metacharacter ${JSON.stringify(bad[0])}; commands run without a shell — pass an argv array instead`,
    );
  }
  const argv: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: "'" | '"' | null = null;
  for (const ch of command) {
    if (quote) {
      if (ch === quote) quote = null;
      else cur += ch;
      continue;
    }
    if (ch === "'" || ch === '"') {
      quote = ch;
      inWord = true;
    } else if (ch === ' ') {
      if (inWord) argv.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += ch;
      inWord = true;
    }
  }
  if (quote) throw new CommandRefused('unbalanced-quote', 'command refused: a quote is not closed');
  if (inWord) argv.push(cur);
  if (argv.length === 0) throw new CommandRefused('empty', 'command refused: it is empty');
  return argv;
}

function isExecutableFile(p: string): boolean {
  try {
    if (!statSync(p).isFile()) return false;
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The real file a program name refers to. A bare name is looked up on SAFE_PATH
 * only; an absolute path must already be normal (no `.`/`..` segments, no `//`);
 * relative paths (`./ls`, `bin/ls`) are refused because they would name files
 * in the writable workspace. Symlinks are resolved so `/bin/rm` and `/usr/bin/rm` agree.
 */
export function resolveProgram(program: string): string {
  if (program === '') throw new CommandRefused('empty', 'command refused: the program name is empty');
  if (program.includes('\0')) throw new CommandRefused('bad-program', 'command refused: the program name contains a NUL byte');
  if (!program.includes('/')) {
    for (const dir of SAFE_PATH) {
      const candidate = join(dir, program);
      if (isExecutableFile(candidate)) return realpathSync(candidate);
    }
    throw new CommandRefused('not-found', `command refused: program "${program}" was not found on ${SAFE_PATH.join(':')}`);
  }
  if (!isAbsolute(program)) {
    throw new CommandRefused('relative-path', `command refused: "${program}" is a relative path; name the program or give its absolute path`);
  }
  if (normalize(program) !== program || program.split('/').some((seg) => seg === '.' || seg === '..')) {
    throw new CommandRefused('path-not-normal', `command refused: "${program}" is not a normal path (it contains ".", ".." or "//")`);
  }
  if (!isExecutableFile(program)) throw new CommandRefused('not-found', `command refused: "${program}" is not an executable file`);
  return realpathSync(program);
}

// Programs whose job is to run another program (or interpret code): allowlisting
// `env` or `xargs` would allowlist everything. They are refused whenever an
// allowlist is in force; the user allowlists the inner program instead.
const LAUNCHERS = new Set([
  'env', 'sudo', 'su', 'doas', 'xargs', 'nice', 'nohup', 'timeout', 'stdbuf', 'setsid', 'chroot', 'unshare', 'nsenter',
  'busybox', 'sh', 'bash', 'dash', 'zsh', 'ksh', 'fish', 'csh', 'tcsh', 'script', 'flock', 'ionice', 'taskset',
  'chrt', 'strace', 'ltrace', 'gdb', 'watch', 'time', 'command', 'exec', 'eval', 'parallel', 'run-parts', 'bwrap',
  'find', 'awk', 'gawk', 'mawk', 'perl', 'python', 'python3', 'ruby', 'node', 'lua', 'php', 'tclsh', 'expect', 'vim', 'vi', 'ed',
]);

function baseName(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

function isLauncher(resolved: string, asked: string): boolean {
  const names = [baseName(resolved), baseName(asked)];
  // python3.11, perl5.36 ...: strip a trailing version.
  return names.some((n) => LAUNCHERS.has(n) || LAUNCHERS.has(n.replace(/[0-9.]+$/, '')));
}

/**
 * An allowlist entry is an argv pattern: `["git", "status"]` allows exactly that,
 * a trailing `"..."` allows any further arguments (`["ls", "..."]`). The program
 * is compared by resolved file, the arguments token by token.
 */
export type AllowEntry = string[];

export interface CheckedCommand {
  /** The resolved absolute program file followed by the arguments, as it will be executed. */
  argv: string[];
  /** The program as asked (for messages and the audit log). */
  program: string;
}

export function checkCommand(input: { argv?: unknown; command?: unknown }, allow: AllowEntry[] | null): CheckedCommand {
  let argv: string[];
  if (input.argv !== undefined) {
    if (!Array.isArray(input.argv) || input.argv.length === 0 || !input.argv.every((a) => typeof a === 'string')) {
      throw new CommandRefused('bad-input', 'command refused: argv must be a non-empty array of strings');
    }
    argv = input.argv as string[];
    if (argv.some((a) => a.includes('\0'))) throw new CommandRefused('bad-input', 'command refused: an argument contains a NUL byte');
  } else if (typeof input.command === 'string') {
    argv = parseCommandString(input.command);
  } else {
    throw new CommandRefused('bad-input', 'command refused: give argv (an array of strings) or command (a string)');
  }
  const [program, ...args] = argv;
  const resolved = resolveProgram(program);
  if (allow !== null) {
    if (isLauncher(resolved, program)) {
      const hint = baseName(program) === 'env' ? ' (`env -S` and `env CMD` run arbitrary commands)' : '';
      throw new CommandRefused(
        'launcher',
        `command refused: "${program}" runs other programs or code${hint}; only directly allowlisted programs may run`,
      );
    }
    if (!allow.some((entry) => matches(entry, program, resolved, args))) {
      throw new CommandRefused('not-allowlisted', `command refused: ${JSON.stringify([program, ...args])} matches no entry of the exec allowlist`);
    }
  }
  return { argv: [resolved, ...args], program };
}

function matches(entry: AllowEntry, program: string, resolved: string, args: string[]): boolean {
  if (entry.length === 0) return false;
  // Same file is not enough: multi-call binaries (busybox, coreutils --enable-single-binary)
  // are one file under many names, and the name decides what they do.
  if (baseName(entry[0]) !== baseName(program)) return false;
  let entryProgram: string;
  try {
    entryProgram = resolveProgram(entry[0]);
  } catch {
    return false;
  }
  if (entryProgram !== resolved) return false;
  const pattern = entry.slice(1);
  const open = pattern[pattern.length - 1] === '...';
  const fixed = open ? pattern.slice(0, -1) : pattern;
  if (open ? args.length < fixed.length : args.length !== fixed.length) return false;
  return fixed.every((tok, i) => tok === args[i]);
}
