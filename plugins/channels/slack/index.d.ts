import type { InboundMessage, OutboundMessage } from '../../../core/plugin-api.ts';
export declare function start(ctx: { config: Record<string, unknown> }): Promise<void>;
export declare function send(outbound: OutboundMessage): Promise<{ platformMessageId?: string }>;
export declare function stop(): Promise<void>;
export declare function toInbound(event: unknown): InboundMessage | null;
