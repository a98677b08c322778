import type { Verb } from '../main.ts';
export const verb: Verb = { usage: 'usage: carapace cron', async run() {} };
