import { createWriteStream, renameSync, statSync, existsSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { redact } from './redact.ts';

export const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const;
export type Level = keyof typeof LEVELS;

export interface LogRecord {
  time: string;
  level: Level;
  msg: string;
  [field: string]: unknown;
}

export type LogSink = (record: LogRecord) => void;

export interface Logger {
  trace(msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  fatal(msg: string, fields?: Record<string, unknown>): void;
  /** A logger whose records all carry these fields (plugin id, session id, ...). */
  child(fields: Record<string, unknown>): Logger;
}

export interface LogHub {
  logger: Logger;
  setLevel(level: Level): void;
  /** Every emitted record (after redaction) also goes to listeners: `logs.tail`, tests. */
  listen(sink: LogSink): () => void;
  close(): Promise<void>;
}

export interface LogOptions {
  level?: Level;
  /** Human-readable lines when true, JSON lines otherwise. */
  pretty?: boolean;
  stream?: NodeJS.WritableStream | null;
  /** Directory for rotated JSON-lines files; none when omitted. */
  dir?: string;
  /** Secret values to scrub from every record, looked up at write time. */
  secretValues?: () => Iterable<string>;
}

const MAX_FILE_BYTES = 10 * 1024 * 1024;
const KEEP_FILES = 3;

export function createLogHub(opts: LogOptions = {}): LogHub {
  let threshold: number = LEVELS[opts.level ?? 'info'];
  const out = opts.stream === undefined ? process.stdout : opts.stream;
  const pretty = opts.pretty ?? false;
  const listeners = new Set<LogSink>();
  const file = opts.dir ? new RotatingFile(logFiles(opts.dir).at(-1)!) : null;

  function emit(level: Level, msg: string, fields: Record<string, unknown>): void {
    if (LEVELS[level] < threshold && listeners.size === 0) return;
    const record = redact(
      { time: new Date().toISOString(), level, msg, ...fields },
      opts.secretValues ? opts.secretValues() : [],
    ) as LogRecord;
    for (const sink of listeners) {
      try {
        sink(record);
      } catch {
        // a broken listener must not break logging
      }
    }
    if (LEVELS[level] < threshold) return;
    const line = JSON.stringify(record);
    file?.write(line + '\n');
    if (out) out.write(pretty ? formatPretty(record) + '\n' : line + '\n');
  }

  function make(bound: Record<string, unknown>): Logger {
    const at = (level: Level) => (msg: string, fields?: Record<string, unknown>) =>
      emit(level, msg, fields ? { ...bound, ...fields } : bound);
    return {
      trace: at('trace'),
      debug: at('debug'),
      info: at('info'),
      warn: at('warn'),
      error: at('error'),
      fatal: at('fatal'),
      child: (fields) => make({ ...bound, ...fields }),
    };
  }

  return {
    logger: make({}),
    setLevel(level) {
      threshold = LEVELS[level];
    },
    listen(sink) {
      listeners.add(sink);
      return () => listeners.delete(sink);
    },
    close: () => file?.close() ?? Promise.resolve(),
  };
}

/** A logger that drops everything: for CLI verbs and tests that do not care. */
export const silentLogger: Logger = createLogHub({ stream: null, level: 'fatal' }).logger;

export function formatPretty(r: LogRecord): string {
  const { time, level, msg, ...rest } = r;
  const extras = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${time.slice(11, 19)} ${level.toUpperCase().padEnd(5)} ${msg}${extras ? ' ' + extras : ''}`;
}

/** The log files of `dir`, oldest first (what `carapace logs` reads). */
export function logFiles(dir: string): string[] {
  const current = join(dir, 'carapace.log');
  return [...Array.from({ length: KEEP_FILES }, (_, i) => `${current}.${KEEP_FILES - i}`), current];
}

/** Size-based rotation: carapace.log → carapace.log.1 → ... keeps KEEP_FILES old files. */
class RotatingFile {
  #path: string;
  #stream: WriteStream;
  #bytes: number;

  constructor(path: string) {
    this.#path = path;
    this.#bytes = existsSync(path) ? statSync(path).size : 0;
    this.#stream = createWriteStream(path, { flags: 'a', mode: 0o600 });
  }

  write(line: string): void {
    if (this.#bytes + line.length > MAX_FILE_BYTES) this.#rotate();
    this.#bytes += Buffer.byteLength(line);
    this.#stream.write(line);
  }

  #rotate(): void {
    this.#stream.end();
    for (let i = KEEP_FILES - 1; i >= 1; i--) {
      const from = `${this.#path}.${i}`;
      if (existsSync(from)) renameSync(from, `${this.#path}.${i + 1}`);
    }
    if (existsSync(this.#path)) renameSync(this.#path, `${this.#path}.1`);
    this.#stream = createWriteStream(this.#path, { flags: 'a', mode: 0o600 });
    this.#bytes = 0;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#stream.end(resolve));
  }
}
