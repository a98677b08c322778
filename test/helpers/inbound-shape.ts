// The shape of `InboundMessage` (core/plugin-api.ts) as a JSON schema, so channel
// tests check what a plugin publishes on `channel.inbound` at run time, not only
// what the type checker sees.
import { Ajv } from 'ajv';
import assert from 'node:assert/strict';
import type { InboundMessage } from '../../core/plugin-api.ts';

const media = {
  type: 'array',
  items: {
    type: 'object',
    required: ['kind', 'ref'],
    additionalProperties: false,
    properties: {
      kind: { enum: ['image', 'audio', 'video', 'file'] },
      ref: { type: 'string', minLength: 1 },
      mime: { type: 'string' },
      name: { type: 'string' },
    },
  },
};

const inboundSchema = {
  type: 'object',
  required: ['channel', 'chatId', 'chatType', 'sender', 'text', 'platformMessageId'],
  additionalProperties: false,
  properties: {
    channel: { type: 'string', minLength: 1 },
    account: { type: 'string' },
    chatId: { type: 'string', minLength: 1 },
    chatType: { enum: ['direct', 'group', 'thread'] },
    threadId: { type: 'string', minLength: 1 },
    sender: {
      type: 'object',
      required: ['id'],
      additionalProperties: false,
      properties: { id: { type: 'string', minLength: 1 }, name: { type: 'string' }, username: { type: 'string' } },
    },
    text: { type: 'string' },
    media,
    mentioned: { type: 'boolean' },
    replyTo: { type: 'string' },
    platformMessageId: { type: 'string', minLength: 1 },
    ts: { type: 'number' },
  },
};

const validateInbound = new Ajv({ allErrors: true, strict: true }).compile(inboundSchema);

/** Asserts `v` is a well-formed InboundMessage and returns it typed. */
export function assertInbound(v: unknown): InboundMessage {
  if (!validateInbound(v)) assert.fail(`not an InboundMessage: ${JSON.stringify(validateInbound.errors)} in ${JSON.stringify(v)}`);
  return v as unknown as InboundMessage;
}
