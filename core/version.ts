import { readFileSync } from 'node:fs';

/** The package version, read once: the gateway reports it in `health`, `hello` and `status`. */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
