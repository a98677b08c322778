// Run by strip-types.ts as a short-lived process: a JSON array of TypeScript
// sources on stdin, the JSON array of their JavaScript on stdout. 'strip' mode
// keeps every line and column where it was, so stack traces point into the source.
import { stripTypeScriptTypes } from 'node:module';
import { text } from 'node:stream/consumers';

const sources = JSON.parse(await text(process.stdin)) as string[];
process.stdout.write(JSON.stringify(sources.map((code) => stripTypeScriptTypes(code, { mode: 'strip' }))));
