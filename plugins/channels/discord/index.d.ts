import type { InboundMessage, OutboundMessage } from '../../../core/plugin-api.ts';
export declare function start(ctx: { config: Record<string, unknown> }): Promise<void>;
export declare function send(outbound: OutboundMessage): Promise<{ platformMessageId?: string }>;
export declare function stop(): Promise<void>;
export declare function typing(target: { chatId: string; threadId?: string }): Promise<void>;
export declare function toInbound(messageCreate: unknown): InboundMessage | null;
