// Node flags and environment for a long-running gateway. Both are read at
// start-up only, so every way of starting the gateway passes them: the service
// units (core/ops/service.ts), `npm start` (package.json) and `carapace start`
// (the shebang of core/cli/bin.js); test/ops/service.test.ts checks that all of
// them agree.
// - V8's default young generation grows to 2 × 64 MB on a machine with plenty of
//   memory and stays committed; a gateway on a Raspberry Pi has no use for it.
//   Capped, idle memory is ~40 MB lower for a few more (short) scavenges.
// - `gc` for the idle memory reducer (memory-reducer.ts). Plugin threads see it
//   too (first-party code); the sandbox process, where isolates live, does not get
//   this flag (isolate-runtime.ts).
// - No start-up snapshot: Node then compiles only the internals it uses instead of
//   deserializing all of them, in the main thread and in every worker thread. Measured
//   side by side: idle gateway 75 → 70 MB, each plugin thread ~2.5 MB less, for ~40 ms
//   more start-up (BENCHMARKS.md). A long-running gateway on a small machine is the
//   trade's right side; the CLI verbs share the flags (the shebang), and a 100 ms verb
//   is still instant.
export const GATEWAY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--expose-gc', '--no-node-snapshot'];

// glibc gives every thread that allocates an arena of its own (up to eight per
// core), and each arena keeps what was freed in it. The gateway's threads (main,
// libuv's pool, V8's helpers, plugin threads) share one: with two, the tree in
// use was ~2.5 MB larger; with the default, ~3 MB more again, and more of the slow
// growth long-running processes show. Small allocations never take the arena's
// lock (each thread's tcache serves them): side by side, the bus bench moved
// within its noise (BENCHMARKS.md).
export const GATEWAY_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '1' };

/** `NAME=value ...` as a shell or `env -S` takes it. */
export const GATEWAY_ENV_WORDS = Object.entries(GATEWAY_ENV).map(([k, v]) => `${k}=${v}`).join(' ');
