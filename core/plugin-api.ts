// The plugin API as plugin authors see it (`import type ... from 'carapace/plugin'`).
// Types only: at run time a plugin reaches the kernel solely through the injected
// `carapace` object, whatever its runtime (isolate or worker).

export type JsonSchema = Record<string, unknown>;

// ---------------------------------------------------------------- capabilities

export interface FetchInit {
  method?: string;
  headers?: Record<string, string>;
  /** A string body, sent as written. */
  body?: string;
  /**
   * Substitute `{{secret:NAME}}` placeholders in the body too (for allowed hosts).
   * Off by default: a body often carries text others can steer. Ask for it only
   * for a body the plugin composed itself (e.g. a webhook registration).
   */
  secretsInBody?: boolean;
  /** Abort after this many ms (capped by the kernel). */
  timeoutMs?: number;
}

export interface FetchResult {
  status: number;
  statusText: string;
  headers: Record<string, string>;
  /** Final URL after (re-checked) redirects. */
  url: string;
  body: string;
}

/**
 * A kernel-held connection (`net.websocket`, `net.connect`). Inbound data is scrubbed
 * of the plugin's secret values; `{{secret:NAME}}` in a write is substituted only for
 * a host listed for NAME. Events that arrive before a handler is attached are kept.
 */
export interface SocketEvents {
  /** Text as it arrives: one websocket message per call (base64 for a binary one), or a chunk of a TCP/TLS stream. */
  onData(handler: (data: string) => void): void;
  onClose(handler: (info: { code?: number; reason?: string; error?: string }) => void): void;
  write(data: string): Promise<void>;
  /** `code` (websocket only): 1000 or 3000-4999 — e.g. Discord's 4900 keeps a resumable session. */
  close(code?: number): Promise<void>;
  /**
   * Plain TCP sockets only (STARTTLS, as in SMTP on port 587): continue this
   * connection over TLS, the certificate verified for the host it was opened to.
   * Call it once the server has said go ahead and nothing else has arrived since;
   * await it before writing (a write meanwhile is refused), and check again when it
   * resolves that nothing arrived in between: that would be clear text a man in the
   * middle injected, to be refused, not read as the server's TLS answer.
   */
  startTls(): Promise<void>;
}

export interface CapabilityApi {
  net: {
    fetch(url: string, init?: FetchInit): Promise<FetchResult>;
    websocket(url: string, opts?: { headers?: Record<string, string> }): Promise<SocketEvents>;
    connect(host: string, port: number, opts?: { tls?: boolean }): Promise<SocketEvents>;
    /**
     * Worker runtime only: a WHATWG `fetch` (streaming `Response`) performed by the
     * kernel under the same allowlist and secret substitution, so provider SDKs can
     * take it as their `fetch` option and an `apiKey` of `{{secret:NAME}}`.
     */
    webFetch?: (input: string | URL | Request, init?: RequestInit) => Promise<Response>;
  };
  fs: {
    read(path: string): Promise<string>;
    write(path: string, data: string): Promise<void>;
    list(dir: string): Promise<{ name: string; type: 'file' | 'dir' }[]>;
  };
  kv: {
    get(key: string): Promise<unknown>;
    set(key: string, value: unknown): Promise<void>;
    delete(key: string): Promise<void>;
    list(prefix: string): Promise<{ key: string; value: unknown }[]>;
  };
  bus: {
    publish(topic: string, msg: unknown): Promise<void>;
    /** Ends with `unsubscribe()`; a subscription made for one call (a reply topic) must, or it stays until the plugin stops. */
    subscribe(pattern: string, handler: (msg: { topic: string; payload: unknown; sessionKey?: string }) => void | Promise<void>): Promise<{ unsubscribe(): Promise<void> }>;
  };
  timers: {
    sleep(ms: number): Promise<void>;
    interval(ms: number, handler: () => void | Promise<void>): Promise<{ cancel(): Promise<void> }>;
  };
  log: {
    info(msg: string, fields?: Record<string, unknown>): void;
    warn(msg: string, fields?: Record<string, unknown>): void;
    error(msg: string, fields?: Record<string, unknown>): void;
  };
  /** The user's config for this plugin, validated against the manifest's `config` schema. */
  config: Record<string, unknown>;
}

// ---------------------------------------------------------------- tools

export interface ToolDef {
  name: string;
  description: string;
  input: JsonSchema;
}

export interface ToolContext {
  agentId: string;
  sessionKey: string;
  runId?: string;
}

export interface ToolResult {
  /** Text for the model. */
  content: string;
  isError?: boolean;
  /** Structured data for clients (not sent to the model). */
  data?: unknown;
}

export interface ToolPlugin {
  tools: (ToolDef & { run(input: unknown, ctx: ToolContext): Promise<ToolResult | string> })[];
}

// ---------------------------------------------------------------- providers

export type ContentPart =
  | { type: 'text'; text: string }
  | { type: 'tool_call'; id: string; name: string; input: unknown }
  | { type: 'tool_result'; toolCallId: string; content: string; isError?: boolean };

export interface ChatMessage {
  role: 'user' | 'assistant';
  content: ContentPart[];
}

export interface ModelInfo {
  id: string;
  contextWindow: number;
  maxTokens: number;
  input?: ('text' | 'image')[];
  /** USD per million tokens. */
  price?: { input: number; output: number; cacheRead?: number; cacheWrite?: number };
}

export interface CompletionRequest {
  model: string;
  system?: string;
  messages: ChatMessage[];
  tools?: ToolDef[];
  maxTokens?: number;
  temperature?: number;
}

export interface Usage {
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens?: number;
  cacheWriteTokens?: number;
}

export type CompletionEvent =
  | { type: 'text'; delta: string }
  | { type: 'tool_call_start'; id: string; name: string }
  | { type: 'tool_call_delta'; id: string; partialJson: string };

export interface CompletionResult {
  /** The assistant message: text parts and tool calls, in order. */
  message: ChatMessage;
  stopReason: 'end' | 'tool_use' | 'max_tokens' | 'refusal';
  usage: Usage;
}

/** How a provider failure is classified, so the agent knows whether to fall back. */
export type ProviderErrorKind = 'rate_limit' | 'overloaded' | 'server' | 'timeout' | 'network' | 'auth' | 'bad_request' | 'aborted';

export interface ProviderErrorInfo {
  kind: ProviderErrorKind;
  status?: number;
  retryAfterMs?: number;
  message: string;
}

export interface ProviderPlugin {
  models(): Promise<ModelInfo[]> | ModelInfo[];
  complete(request: CompletionRequest, onEvent: (event: CompletionEvent) => void): Promise<CompletionResult>;
}

// ---------------------------------------------------------------- channels

/** The unified inbound envelope every channel publishes on `channel.inbound`. */
export interface InboundMessage {
  channel: string;
  account?: string;
  /** Where to reply: the DM peer or the group/channel id. */
  chatId: string;
  chatType: 'direct' | 'group' | 'thread';
  threadId?: string;
  sender: { id: string; name?: string; username?: string };
  text: string;
  media?: { kind: 'image' | 'audio' | 'video' | 'file'; ref: string; mime?: string; name?: string }[];
  /** True when the bot was mentioned (or replied to) in a group. */
  mentioned?: boolean;
  replyTo?: string;
  /** The platform's id for this message: the de-duplication key. */
  platformMessageId: string;
  ts?: number;
}

export interface OutboundMessage {
  channel: string;
  account?: string;
  chatId: string;
  threadId?: string;
  text: string;
  replyTo?: string;
  media?: { kind: 'image' | 'audio' | 'video' | 'file'; ref: string; mime?: string; name?: string }[];
  /** Stable per logical message: a redelivery carries the same key. */
  idempotencyKey: string;
}

export interface ChannelCapabilities {
  chunkLimit: number;
  groups?: boolean;
  threads?: boolean;
  media?: boolean;
  markdown?: 'none' | 'basic' | 'full';
  /**
   * Sender ids are vouched for by the platform (a Telegram user id, a Slack member
   * id), not chosen by whoever connects (an IRC nick, an e-mail From header). Only
   * such channels may carry decisions such as tool approvals (approvals.chat).
   */
  authenticatedSender?: boolean;
}

export interface ChannelPlugin {
  start(ctx: { config: Record<string, unknown> }): Promise<void>;
  /** Send one chunk; return the platform id. Throw with `{retryable, retryAfterMs}` for transient failures. */
  send(outbound: OutboundMessage): Promise<{ platformMessageId?: string }>;
  stop(): Promise<void>;
}

// ---------------------------------------------------------------- memory

export interface MemoryDoc {
  id: string;
  path: string;
  text: string;
  source?: 'memory' | 'daily' | 'session';
}

export interface MemoryHit {
  id: string;
  path: string;
  startLine: number;
  endLine: number;
  snippet: string;
  score: number;
}

export interface MemoryPlugin {
  index(doc: MemoryDoc): Promise<{ chunks: number }>;
  search(query: string, opts?: { k?: number }): Promise<MemoryHit[]>;
  forget(id: string): Promise<void>;
}
