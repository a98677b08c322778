#!/usr/bin/env -S MALLOC_ARENA_MAX=1 node --max-semi-space-size=1 --expose-gc --no-node-snapshot
// The shebang's environment and flags: see core/gateway/node-flags.ts.
// Plain JavaScript on purpose: this file must run on any Node to say, in one
// line, that Carapace needs Node 24 — instead of a syntax error from deeper code.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(
    `carapace: needs Node.js 24 or newer (this is ${process.version}); run it through \`npm start\`, which fetches Node 24, or install Node 24 and retry\n`,
  );
  process.exit(1);
}
// V8's on-disk code cache roughly halves start-up time and lowers idle memory
// from the second start on. It lives in a directory only this user can write:
// a cache in a shared /tmp could be used to plant bytecode.
try {
  const { enableCompileCache } = await import('node:module');
  const { homedir } = await import('node:os');
  const { mkdirSync } = await import('node:fs');
  const dir = process.env.CARAPACE_COMPILE_CACHE ?? `${process.env.XDG_CACHE_HOME ?? `${homedir()}/.cache`}/carapace/compile-cache`;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // A gateway runs for weeks: it must not start on an empty cache (warm-cache.js says why).
  if (process.argv[2] === 'start') (await import('./warm-cache.js')).warmCompileCache(dir);
  enableCompileCache(dir);
} catch {
  // no cache: slower start, same behaviour
}
// Start-up without V8's optimizing compilers, for every verb, until it does sustained work (why: core/gateway/startup-jit.ts).
const jit = await import('../gateway/startup-jit.ts');
if (jit.deferOptimizingJit()) jit.whenBusy(jit.restoreOptimizingJit);
const { main } = await import('./main.ts');
process.exitCode = await main(process.argv.slice(2));
