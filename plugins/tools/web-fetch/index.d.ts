import type { ToolDef, ToolResult } from '../../../core/plugin-api.ts';
export declare function htmlToText(html: string): { title: string; text: string };
export declare function decodeEntities(s: string): string;
export declare const tools: (ToolDef & { run(input: any, ctx?: unknown): Promise<ToolResult> })[];
