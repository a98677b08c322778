import type { ToolDef, ToolResult } from '../../../core/plugin-api.ts';
export declare function workspacePath(input: unknown): string;
export declare const tools: (ToolDef & { run(input: any, ctx?: unknown): Promise<ToolResult> })[];
