// What the host sees of a running plugin, whatever its runtime.

export interface PluginInstance {
  readonly runtime: 'isolate' | 'worker';
  /** Call a hook (`tool`, `complete`, `send`, ...). Rejects with PluginCallError. */
  call(hook: string, args: unknown[], onEvent?: (event: unknown) => void): Promise<unknown>;
  /** Push a subscription message, interval tick or socket events into the plugin; settles when the plugin has handled it. */
  deliver(kind: DeliveryKind, handlerId: number, payload: unknown): Promise<void>;
  stop(): Promise<void>;
  /** Called once when the plugin dies on its own (memory, timeout, flood, crash). */
  onExit(listener: (reason: string) => void): void;
}

export type DeliveryKind = 'bus' | 'interval' | 'socket';

/** What a plugin's thrown error may tell the kernel besides its message (the delivery queue reads these). */
export interface PluginErrorInfo {
  retryable?: boolean;
  retryAfterMs?: number;
  status?: number;
}

/**
 * Keep only well-typed retry hints from a plugin's error (a plain object from across
 * the boundary): anything else it carried — stacks, fields, getters — stays behind.
 */
export function errorInfo(raw: unknown): PluginErrorInfo {
  if (!raw || typeof raw !== 'object') return {};
  const r = raw as Record<string, unknown>;
  const out: PluginErrorInfo = {};
  if (typeof r.retryable === 'boolean') out.retryable = r.retryable;
  if (typeof r.retryAfterMs === 'number' && Number.isFinite(r.retryAfterMs) && r.retryAfterMs >= 0) out.retryAfterMs = Math.min(Math.round(r.retryAfterMs), 24 * 3600_000);
  if (typeof r.status === 'number' && Number.isInteger(r.status) && r.status >= 100 && r.status <= 599) out.status = r.status;
  return out;
}

/** A hook call failed. `fatal` means the plugin was stopped (timeout, memory, crash) and must be restarted. */
export class PluginCallError extends Error {
  readonly fatal: boolean;
  readonly retryable?: boolean;
  readonly retryAfterMs?: number;
  readonly status?: number;
  constructor(message: string, fatal: boolean, info: PluginErrorInfo = {}) {
    super(message);
    this.name = 'PluginCallError';
    this.fatal = fatal;
    const i = errorInfo(info);
    if (i.retryable !== undefined) this.retryable = i.retryable;
    if (i.retryAfterMs !== undefined) this.retryAfterMs = i.retryAfterMs;
    if (i.status !== undefined) this.status = i.status;
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
  /**
   * Worker runtime: the shared thread this plugin runs in, and that thread's heap
   * limit (fixed when it starts); absent, the plugin gets a thread of its own.
   */
  thread?: { name: string; memoryMb: number };
}

/** The gateway side of capability calls: JSON args in, a JSON-able value out (or a thrown error). */
export type CapabilityHandler = (method: string, args: unknown[]) => Promise<unknown>;
