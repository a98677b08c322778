import type { ToolDef, ToolResult, ToolContext } from '../../../core/plugin-api.ts';
export declare const tools: (ToolDef & { run(input: any, ctx: ToolContext): Promise<ToolResult> })[];
export declare function bindCron(cron: import('../../../core/scheduler/capability.ts').CronCapability): typeof tools;
