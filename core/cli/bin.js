#!/usr/bin/env node
// Plain JavaScript on purpose: this file must run on any Node to say, in one
// line, that Carapace needs Node 24 — instead of a syntax error from deeper code.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(
    `carapace: needs Node.js 24 or newer (this is ${process.version}); run it through \`npm start\`, which fetches Node 24, or install Node 24 and retry\n`,
  );
  process.exit(1);
}
const { main } = await import('./main.ts');
process.exitCode = await main(process.argv.slice(2));
