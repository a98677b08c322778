import type { OutboundMessage } from '../../../core/plugin-api.ts';
export interface ParsedMail {
  from: string;
  fromName?: string;
  subject: string;
  messageId: string | null;
  inReplyTo: string | null;
  references: string[];
  threadRoot: string | null;
  autoSubmitted: boolean;
  text: string;
  date: number;
}
export declare function start(ctx: { config: Record<string, unknown> }): Promise<void>;
export declare function send(outbound: OutboundMessage): Promise<{ platformMessageId?: string }>;
export declare function stop(): Promise<void>;
export declare function parseMail(raw: string): ParsedMail;
export declare function htmlToText(html: string): string;
export declare function b64decode(s: string): string;
export declare function b64encode(binary: string): string;
export declare function utf8Decode(binary: string): string;
export declare function utf8Encode(text: string): string;
