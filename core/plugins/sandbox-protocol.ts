// The messages between the gateway (isolate-runtime.ts) and the sandbox host
// process (sandbox-host.js), over Node's IPC channel.

export type ToSandbox =
  | { t: 'load'; pid: string; code: string; filename: string; memoryMb: number; callTimeoutMs: number; cpuMsPerCall: number; maxPending: number; config: unknown }
  | { t: 'call'; id: number; pid: string; hook: string; args: unknown[] }
  | { t: 'capres'; pid: string; cid: number; reply: string }
  | { t: 'unload'; pid: string }
  /** The gateway went idle: collect this process's garbage. */
  | { t: 'gc' };

export type FromSandbox =
  | { t: 'ready' }
  | { t: 'loaded'; pid: string; ok: boolean; error?: string }
  | { t: 'result'; id: number; reply: string }
  | { t: 'cap'; pid: string; cid: number; method: string; args: string }
  | { t: 'emit'; pid: string; method: string; args: string }
  | { t: 'dead'; pid: string; reason: string };
