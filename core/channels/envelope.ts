import type { ErrorObject } from 'ajv';
import { kernelAjv, pointerOf } from '../schema.ts';
import { CarapaceError } from '../errors.ts';
import type { InboundMessage, OutboundMessage } from '../plugin-api.ts';

// The two channel envelopes as JSON schemas (the TypeScript shapes are in
// core/plugin-api.ts). Channel plugins are untrusted: everything they publish is
// checked here before the router reads a single field. Compiled once.

const id = { type: 'string', minLength: 1, maxLength: 256, pattern: '^[^\\u0000-\\u001f]+$' } as const;
const channelId = { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,63}$' } as const;
const MAX_TEXT = 64 * 1024;

const media = {
  type: 'array',
  maxItems: 32,
  items: {
    type: 'object',
    properties: {
      kind: { enum: ['image', 'audio', 'video', 'file'] },
      ref: { type: 'string', minLength: 1, maxLength: 4096 },
      mime: { type: 'string', maxLength: 255 },
      name: { type: 'string', maxLength: 1024 },
    },
    required: ['kind', 'ref'],
    additionalProperties: false,
  },
} as const;

export const inboundSchema = {
  $id: 'carapace.channel.inbound/v1',
  type: 'object',
  properties: {
    channel: channelId,
    account: id,
    chatId: id,
    chatType: { enum: ['direct', 'group', 'thread'] },
    threadId: id,
    sender: {
      type: 'object',
      properties: {
        id,
        name: { type: 'string', maxLength: 256 },
        username: { type: 'string', maxLength: 256 },
      },
      required: ['id'],
      additionalProperties: false,
    },
    text: { type: 'string', maxLength: MAX_TEXT },
    media,
    mentioned: { type: 'boolean' },
    replyTo: id,
    platformMessageId: id,
    ts: { type: 'integer', minimum: 0 },
  },
  required: ['channel', 'chatId', 'chatType', 'sender', 'text', 'platformMessageId'],
  additionalProperties: false,
} as const;

export const outboundSchema = {
  $id: 'carapace.channel.outbound/v1',
  type: 'object',
  properties: {
    channel: channelId,
    account: id,
    chatId: id,
    threadId: id,
    text: { type: 'string', maxLength: 1024 * 1024 },
    replyTo: id,
    media,
    idempotencyKey: { type: 'string', minLength: 1, maxLength: 200, pattern: '^[\\x21-\\x7e]+$' },
  },
  required: ['channel', 'chatId', 'text', 'idempotencyKey'],
  additionalProperties: false,
} as const;

const ajv = kernelAjv;
const checkInbound = ajv.compile<InboundMessage>(inboundSchema);
const checkOutbound = ajv.compile<OutboundMessage>(outboundSchema);

function refusal(what: string, err: ErrorObject): CarapaceError {
  const pointer = pointerOf(err) || '/';
  const message = err.keyword === 'additionalProperties' ? 'unknown key' : err.message ?? 'invalid';
  return new CarapaceError('INVALID_REQUEST', `${what} ${pointer}: ${message}`, { pointer });
}

/** The envelope a channel plugin published, or INVALID_REQUEST naming the JSON pointer of the first problem. */
export function parseInbound(value: unknown): InboundMessage {
  if (!checkInbound(value)) throw refusal('inbound message', checkInbound.errors![0]);
  if (value.chatType === 'thread' && value.threadId === undefined) {
    throw new CarapaceError('INVALID_REQUEST', 'inbound message /threadId: required when chatType is "thread"', { pointer: '/threadId' });
  }
  return value;
}

/** An outbound message, or INVALID_REQUEST naming the JSON pointer of the first problem. */
export function parseOutbound(value: unknown): OutboundMessage {
  if (!checkOutbound(value)) throw refusal('outbound message', checkOutbound.errors![0]);
  return value;
}
