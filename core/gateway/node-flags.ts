// Node flags for a long-running gateway: V8's default young generation grows to
// 2 × 64 MB on a machine with plenty of memory and stays committed; a gateway on a
// Raspberry Pi has no use for it. Capped, idle memory is ~40 MB lower for a few
// more (short) scavenges. V8 reads these at start-up only, so every way of starting
// the gateway passes them: the service units (core/ops/service.ts), `npm start`
// (package.json) and `carapace start` (the shebang of core/cli/bin.js).
export const GATEWAY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1'];
