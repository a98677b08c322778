import { createHash } from 'node:crypto';
import type { ChannelCapabilities, OutboundMessage } from '../plugin-api.ts';
import { chunkText } from './chunk.ts';
import { adaptMarkdown } from './markdown.ts';
import { defangPlaceholders, defangDeep } from '../secrets/placeholder.ts';

// One logical reply → the messages the channel will actually send: Markdown
// adapted to what the channel renders, then split to its size limit. Chunk keys
// derive from the reply's key, so re-preparing the same reply yields the same
// keys and the queue recognises a repeat.


export const DEFAULT_CAPABILITIES: ChannelCapabilities = { chunkLimit: 4000, markdown: 'basic' };

export function prepareOutbound(original: OutboundMessage, caps: ChannelCapabilities = DEFAULT_CAPABILITIES): OutboundMessage[] {
  // Every field the agent can steer (text, thread, reply-to, media refs) is defanged:
  // the channel's plugin sends them to a host that holds its token.
  const msg = { ...defangDeep(original), idempotencyKey: original.idempotencyKey };
  const text = defangPlaceholders(adaptMarkdown(msg.text, caps.markdown ?? 'basic'));
  const chunks = chunkText(text, caps.chunkLimit);
  if (chunks.length <= 1) return [{ ...msg, text: chunks[0] ?? text }];
  // Keys are capped at 200 characters by the envelope schema: a long base key is hashed.
  const base = msg.idempotencyKey.length > 180 ? createHash('sha256').update(msg.idempotencyKey).digest('hex') : msg.idempotencyKey;
  return chunks.map((chunk, i) => ({
    ...msg,
    text: chunk,
    idempotencyKey: `${base}#${i + 1}/${chunks.length}`,
    // Media and the reply reference go with the first chunk only.
    ...(i === 0 ? {} : { media: undefined, replyTo: undefined }),
  })).map((m) => JSON.parse(JSON.stringify(m)) as OutboundMessage);
}
