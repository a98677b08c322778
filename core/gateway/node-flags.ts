// Node flags for a long-running gateway. V8 reads them at start-up only, so every
// way of starting the gateway passes them: the service units (core/ops/service.ts),
// `npm start` (package.json) and `carapace start` (the shebang of core/cli/bin.js);
// test/ops/service.test.ts checks that all of them agree.
// - V8's default young generation grows to 2 × 64 MB on a machine with plenty of
//   memory and stays committed; a gateway on a Raspberry Pi has no use for it.
//   Capped, idle memory is ~40 MB lower for a few more (short) scavenges.
// - `gc` for the idle memory reducer (memory-reducer.ts). Plugin threads see it
//   too (first-party code); the sandbox process, where isolates live, does not get
//   this flag (isolate-runtime.ts).
export const GATEWAY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--expose-gc'];
