// The bus contract shared by every kernel service and the plugin host. The broker
// (core/bus/) implements it; everything else talks to it only through these types.

/** One message on a topic. Every hop of a conversation is one of these. */
export interface BusMessage {
  id: string;
  topic: string;
  payload: unknown;
  /** Identity of the publisher: `device:<id>`, `plugin:<id>`, `kernel:<service>`. */
  from: string;
  ts: number;
  sessionKey?: string;
  traceId?: string;
}

export interface PublishOptions {
  sessionKey?: string;
  traceId?: string;
  /** A repeat with the same key (per publisher) is accepted once. */
  idempotencyKey?: string;
}

/** What an identity may do on the bus: topic patterns (`a.b.*` one segment, `a.>` the rest). */
export interface TopicAcl {
  publish: string[];
  subscribe: string[];
}

export type MessageHandler = (msg: BusMessage) => void | Promise<void>;

/**
 * An in-process participant's connection to the broker (a kernel service, or the
 * plugin host on behalf of one plugin). Same ACL model as a WebSocket device.
 */
export interface BusPort {
  readonly identity: string;
  /** Throws CarapaceError FORBIDDEN when the ACL does not allow the topic. */
  publish(topic: string, payload: unknown, opts?: PublishOptions): BusMessage;
  /** Throws CarapaceError FORBIDDEN when the ACL does not allow the pattern. Returns unsubscribe. */
  subscribe(pattern: string, handler: MessageHandler): () => void;
  close(): void;
}

export interface Broker {
  /** Kernel services get `{publish:['>'], subscribe:['>']}`; plugins get their manifest's grant. */
  port(identity: string, acl: TopicAcl): BusPort;
}

/** The caller of an RPC method, as the gateway's records say (never as the client claims). */
export interface Caller {
  deviceId: string;
  role: 'operator' | 'node';
  scopes: string[];
  /** Send an event to this caller's socket only (streamed `agent` events, `log` lines). */
  emit(event: string, payload: unknown): void;
  /** Aborted when the caller's socket closes. */
  signal: AbortSignal;
}

export interface MethodDef<P = Record<string, unknown>, R = unknown> {
  /** The scope a caller must hold, e.g. `operator.read`. */
  scope: string;
  /** JSON schema of params, compiled once with ajv at registration. */
  params?: Record<string, unknown>;
  /**
   * The method cannot be called without `idempotencyKey` (protocol.md lists it in chat.send's
   * and bus.publish's params). Every other method takes one too: a call that carries a key is
   * run once, and a repeat returns the first result.
   */
  idempotent?: boolean;
  handler(params: P, caller: Caller): Promise<R> | R;
  /**
   * A repeat of an idempotent call got the first call's result instead of a new
   * run: the chance to attach this caller to what the first one started (a retry
   * on a new connection still wants the run's events).
   */
  replayed?(result: R, caller: Caller): void;
}

export interface MethodRegistry {
  register<P = Record<string, unknown>, R = unknown>(name: string, def: MethodDef<P, R>): void;
}

/** Broadcast an event to every connected operator holding `scope` (pairing requests, approvals...). */
export interface EventFanout {
  broadcast(event: string, payload: unknown, scope: string): void;
}
