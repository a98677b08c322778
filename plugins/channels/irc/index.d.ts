import type { OutboundMessage } from '../../../core/plugin-api.ts';
export declare function start(ctx: { config: Record<string, unknown> }): Promise<void>;
export declare function send(outbound: OutboundMessage): Promise<{ platformMessageId?: string }>;
export declare function stop(): Promise<void>;
export declare function parseLine(line: string): { tags: Record<string, string | true>; prefix: string | null; command: string; params: string[] };
export declare function splitMessage(text: string, maxBytes: number): string[];
export declare function utf8Len(s: string): number;
export declare function mentionOf(text: string, nick: string): { text: string; mentioned: boolean };
