// Wire frames of protocol v1 (protocol.md "Frames"): the strict text → JSON step
// and the ajv validators, compiled once at import. Nothing reads a frame before
// it has passed through here.
import type { ValidateFunction } from 'ajv';
import { escapePointer, kernelAjv, pointerOf } from '../schema.ts';
import { CarapaceError } from '../errors.ts';

export const PROTOCOL_VERSION = 1;
/** Deeper than this is refused before anything walks the value. */
export const MAX_DEPTH = 32;
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

export interface ReqFrame {
  type: 'req';
  id: string;
  method: string;
  params?: Record<string, unknown>;
}

export interface ResFrame {
  type: 'res';
  id: string;
  ok: boolean;
  payload?: unknown;
  error?: { code: string; message: string; details?: Record<string, unknown> };
}

export interface EventFrame {
  type: 'event';
  event: string;
  payload: unknown;
  seq: number;
}

export interface ConnectParams {
  protocol: number;
  client: { name: string; version: string; platform: string };
  role: 'operator' | 'node';
  scopes: string[];
  device: { id: string; publicKey: string; nonce: string; signedAt: number; signature: string };
  pairingCode?: string;
}

const B64_32 = '^[A-Za-z0-9+/]{43}=$';
const B64_64 = '^[A-Za-z0-9+/]{86}==$';
const METHOD_NAME = '^[a-z][A-Za-z0-9]*(\\.[a-z][A-Za-z0-9]*){0,4}$';
const SCOPE = '^(operator|node)\\.[a-z]{1,32}$';

export const reqFrameSchema = {
  type: 'object',
  properties: {
    type: { const: 'req' },
    id: { type: 'string', minLength: 1, maxLength: 64 },
    method: { type: 'string', maxLength: 64, pattern: METHOD_NAME },
    params: { type: 'object' },
  },
  required: ['type', 'id', 'method'],
  additionalProperties: false,
} as const;

export const resFrameSchema = {
  type: 'object',
  properties: {
    type: { const: 'res' },
    // "" answers a frame that had no usable id.
    id: { type: 'string', maxLength: 64 },
    ok: { type: 'boolean' },
    payload: {},
    error: {
      type: 'object',
      properties: { code: { type: 'string' }, message: { type: 'string' }, details: { type: 'object' } },
      required: ['code', 'message'],
      additionalProperties: false,
    },
  },
  required: ['type', 'id', 'ok'],
  additionalProperties: false,
} as const;

export const eventFrameSchema = {
  type: 'object',
  properties: {
    type: { const: 'event' },
    event: { type: 'string', minLength: 1, maxLength: 128 },
    payload: {},
    seq: { type: 'integer', minimum: 0 },
  },
  required: ['type', 'event', 'seq'],
  additionalProperties: false,
} as const;

// The protocol number is checked after the shape (UNSUPPORTED_PROTOCOL, not INVALID_REQUEST),
// so the schema accepts any positive integer there.
export const connectParamsSchema = {
  type: 'object',
  properties: {
    protocol: { type: 'integer', minimum: 0, maximum: 1_000_000 },
    client: {
      type: 'object',
      properties: {
        name: { type: 'string', minLength: 1, maxLength: 64 },
        version: { type: 'string', maxLength: 64 },
        platform: { type: 'string', maxLength: 64 },
      },
      required: ['name', 'version', 'platform'],
      additionalProperties: false,
    },
    role: { enum: ['operator', 'node'] },
    scopes: { type: 'array', maxItems: 16, uniqueItems: true, items: { type: 'string', pattern: SCOPE } },
    device: {
      type: 'object',
      properties: {
        id: { type: 'string', pattern: '^[0-9a-f]{64}$' },
        publicKey: { type: 'string', pattern: B64_32 },
        nonce: { type: 'string', pattern: B64_32 },
        signedAt: { type: 'integer', minimum: 0, maximum: 8_640_000_000_000_000 },
        signature: { type: 'string', pattern: B64_64 },
      },
      required: ['id', 'publicKey', 'nonce', 'signedAt', 'signature'],
      additionalProperties: false,
    },
    pairingCode: { type: 'string', minLength: 1, maxLength: 16 },
  },
  required: ['protocol', 'client', 'role', 'scopes', 'device'],
  additionalProperties: false,
} as const;

const ajv = kernelAjv;
export const validateReqFrame = ajv.compile<ReqFrame>(reqFrameSchema);
export const validateResFrame = ajv.compile<ResFrame>(resFrameSchema);
export const validateEventFrame = ajv.compile<EventFrame>(eventFrameSchema);
export const validateConnectParams = ajv.compile<ConnectParams>(connectParamsSchema);

/** Validate with a compiled validator; throw INVALID_REQUEST naming the first problem's pointer. */
export function check<T>(validate: ValidateFunction<T>, value: unknown, base = ''): T {
  if (validate(value)) return value;
  const err = validate.errors![0];
  const pointer = base + pointerOf(err);
  throw new CarapaceError('INVALID_REQUEST', `${pointer || '/'} ${err.keyword === 'additionalProperties' ? 'is not allowed' : err.message ?? 'is invalid'}`, { pointer });
}

/** A refusal of a frame that did parse as JSON, carrying its id so the error can answer it. */
export class FrameError extends CarapaceError {
  readonly frameId: string | undefined;
  constructor(message: string, pointer: string, frameId: string | undefined) {
    super('INVALID_REQUEST', message, { pointer });
    this.frameId = frameId;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/**
 * Bytes (ws hands us Buffers) or text → a JSON value, refusing invalid UTF-8,
 * nesting deeper than MAX_DEPTH, and keys that could reach a prototype.
 */
export function parseFrameText(data: Uint8Array | string): unknown {
  let text: string;
  if (typeof data === 'string') text = data;
  else {
    try {
      text = utf8.decode(data);
    } catch {
      throw new CarapaceError('INVALID_REQUEST', 'frame is not valid UTF-8', { pointer: '' });
    }
  }
  const deep = depthExceeded(text);
  if (deep !== null) throw new CarapaceError('INVALID_REQUEST', `nested deeper than ${MAX_DEPTH}`, { pointer: deep });
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new CarapaceError('INVALID_REQUEST', 'frame is not valid JSON', { pointer: '' });
  }
  // Only a frame that mentions such a key (literally or through an escape) needs the walk.
  if (text.includes('__proto__') || text.includes('constructor') || text.includes('prototype') || text.includes('\\u')) {
    const bad = forbiddenKey(value, '');
    if (bad !== null) throw new FrameError('forbidden key', bad, salvageId(value));
  }
  return value;
}

/**
 * One pass over the text counting open brackets outside strings. Returns the
 * JSON pointer (array indices and keys are not tracked here, so it is the chain
 * of containers as `/…`) of the first container past MAX_DEPTH, or null.
 */
function depthExceeded(text: string): string | null {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 /* { */ || c === 91 /* [ */) {
      if (++depth > MAX_DEPTH) return pointerAtDepth(text, i);
    } else if (c === 125 || c === 93) depth--;
  }
  return null;
}

/** Rebuild the pointer of the container opening at `end` by parsing the prefix's structure. */
function pointerAtDepth(text: string, end: number): string {
  const stack: { kind: 'obj' | 'arr'; key: string; index: number }[] = [];
  let inString = false;
  let strStart = 0;
  let lastString = '';
  for (let i = 0; i <= end; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++;
      else if (c === 34) {
        inString = false;
        lastString = text.slice(strStart, i);
      }
      continue;
    }
    if (c === 34) {
      inString = true;
      strStart = i + 1;
    } else if (c === 58 /* : */) {
      const top = stack[stack.length - 1];
      if (top?.kind === 'obj') top.key = lastString;
    } else if (c === 44 /* , */) {
      const top = stack[stack.length - 1];
      if (top?.kind === 'arr') top.index++;
    } else if (c === 123) stack.push({ kind: 'obj', key: '', index: 0 });
    else if (c === 91) stack.push({ kind: 'arr', key: '', index: 0 });
    else if (c === 125 || c === 93) stack.pop();
  }
  // The last entry is the container that overflowed; its position is named by its parents.
  return stack
    .slice(0, -1)
    .map((s) => '/' + (s.kind === 'arr' ? String(s.index) : escapePointer(s.key)))
    .join('');
}

function forbiddenKey(value: unknown, at: string): string | null {
  if (value === null || typeof value !== 'object') return null;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const bad = forbiddenKey(value[i], `${at}/${i}`);
      if (bad !== null) return bad;
    }
    return null;
  }
  for (const key of Object.keys(value)) {
    if (FORBIDDEN_KEYS.has(key)) return `${at}/${escapePointer(key)}`;
    const bad = forbiddenKey((value as Record<string, unknown>)[key], `${at}/${escapePointer(key)}`);
    if (bad !== null) return bad;
  }
  return null;
}

/** Text → a validated request frame; throws INVALID_REQUEST with the pointer of the first problem. */
export function parseReqFrame(data: Uint8Array | string): ReqFrame {
  return check(validateReqFrame, parseFrameText(data));
}

/** The id of a frame that failed validation, when it had a usable one (so the error can answer it). */
export function salvageId(value: unknown): string | undefined {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const id = (value as { id?: unknown }).id;
    if (typeof id === 'string' && id.length > 0 && id.length <= 64) return id;
  }
  return undefined;
}

export function resOk(id: string, payload: unknown): string {
  return JSON.stringify({ type: 'res', id, ok: true, payload: payload ?? {} });
}

export function resErr(id: string, error: { code: string; message: string; details?: Record<string, unknown> }): string {
  return JSON.stringify({ type: 'res', id, ok: false, error });
}

export function eventFrame(event: string, payload: unknown, seq: number): string {
  return eventFrameJson(event, JSON.stringify(payload ?? {}), seq);
}

/**
 * The same frame around a payload already serialised (the text JSON.stringify
 * gives for `payload ?? {}`): a message fanned out to many sockets is serialised
 * once, and only the per-connection seq differs between their frames.
 */
export function eventFrameJson(event: string, payloadJson: string, seq: number): string {
  return `{"type":"event","event":${JSON.stringify(event)},"payload":${payloadJson},"seq":${seq}}`;
}
