// What the host sees of a running plugin, whatever its runtime.

export interface PluginInstance {
  readonly runtime: 'isolate' | 'worker';
  /** Call a hook (`tool`, `complete`, `send`, ...). Rejects with PluginCallError. */
  call(hook: string, args: unknown[], onEvent?: (event: unknown) => void): Promise<unknown>;
  /** Push a subscription message or interval tick into the plugin. */
  deliver(kind: 'bus' | 'interval', handlerId: number, payload: unknown): void;
  stop(): Promise<void>;
  /** Called once when the plugin dies on its own (memory, timeout, flood, crash). */
  onExit(listener: (reason: string) => void): void;
}

/** A hook call failed. `fatal` means the plugin was stopped (timeout, memory, crash) and must be restarted. */
export class PluginCallError extends Error {
  readonly fatal: boolean;
  constructor(message: string, fatal: boolean) {
    super(message);
    this.name = 'PluginCallError';
    this.fatal = fatal;
  }
}

export interface LoadSpec {
  id: string;
  runtime: 'isolate' | 'worker';
  entry: string;
  files: Map<string, Buffer>;
  dir: string;
  memoryMb: number;
  callTimeoutMs: number;
  cpuMsPerCall: number;
  maxPending: number;
  config: Record<string, unknown>;
}

/** The gateway side of capability calls: JSON args in, a JSON-able value out (or a thrown error). */
export type CapabilityHandler = (method: string, args: unknown[]) => Promise<unknown>;
