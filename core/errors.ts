// Every error code the protocol and the CLI can emit, in one place (protocol.md
// "Error codes"). A test checks that each code here is documented in the spec.

export type ErrorCode =
  | 'INVALID_REQUEST'
  | 'UNSUPPORTED_PROTOCOL'
  | 'UNAUTHORIZED'
  | 'PAIRING_REQUIRED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'PAYLOAD_TOO_LARGE'
  | 'RATE_LIMITED'
  | 'UNAVAILABLE'
  | 'INTERNAL';

interface CodeInfo {
  message: string;
  retryable: boolean;
  httpStatus: number;
}

export const ERROR_CODES: Record<ErrorCode, CodeInfo> = {
  INVALID_REQUEST: { message: 'The request is malformed', retryable: false, httpStatus: 400 },
  UNSUPPORTED_PROTOCOL: { message: 'The protocol version is not supported', retryable: false, httpStatus: 400 },
  UNAUTHORIZED: { message: 'Authentication failed', retryable: false, httpStatus: 401 },
  PAIRING_REQUIRED: { message: 'This device is not paired yet', retryable: true, httpStatus: 403 },
  FORBIDDEN: { message: 'Not allowed', retryable: false, httpStatus: 403 },
  NOT_FOUND: { message: 'Not found', retryable: false, httpStatus: 404 },
  CONFLICT: { message: 'Conflicts with the current state', retryable: false, httpStatus: 409 },
  PAYLOAD_TOO_LARGE: { message: 'The payload is too large', retryable: false, httpStatus: 413 },
  RATE_LIMITED: { message: 'Too many requests', retryable: true, httpStatus: 429 },
  UNAVAILABLE: { message: 'Temporarily unavailable', retryable: true, httpStatus: 503 },
  INTERNAL: { message: 'Internal error', retryable: false, httpStatus: 500 },
};

/** An error that is safe to put on the wire: a stable code, a message, details. Never a stack. */
export class CarapaceError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message?: string, details?: Record<string, unknown>) {
    super(message ?? ERROR_CODES[code].message);
    this.name = 'CarapaceError';
    this.code = code;
    this.details = details;
  }

  get retryable(): boolean {
    return ERROR_CODES[this.code].retryable;
  }

  toWire(): { code: ErrorCode; message: string; details?: Record<string, unknown> } {
    // protocol.md: UNAVAILABLE always says whether a retry may help; a thrower that knows better sets it.
    const details = this.code === 'UNAVAILABLE' ? { retryable: true, ...this.details } : this.details;
    return details === undefined ? { code: this.code, message: this.message } : { code: this.code, message: this.message, details };
  }
}

/** Anything thrown that is not a CarapaceError becomes INTERNAL on the wire; the original stays in the log. */
export function toWireError(err: unknown): { code: ErrorCode; message: string; details?: Record<string, unknown> } {
  if (err instanceof CarapaceError) return err.toWire();
  return { code: 'INTERNAL', message: ERROR_CODES.INTERNAL.message };
}

/** A CLI failure: printed as one line on stderr, exit code 1 (or 2 for usage). */
export class CliError extends Error {
  readonly exitCode: 1 | 2;
  constructor(message: string, exitCode: 1 | 2 = 1) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 2);
    this.name = 'UsageError';
  }
}
