import type { FastifyInstance } from 'fastify';
import type { KernelContext, Service, ServiceRegistry } from '../kernel.ts';

// A tiny Prometheus registry (text exposition format 0.0.4) and the `metrics`
// service serving it at GET /metrics. Other services reach it by name:
//   registry.get<MetricsService>('metrics').metrics.counter(METRIC.runs).inc({ agent, status })
// Names and labels are fixed by the code that declares them; label values come
// from running state, so each metric caps its series (a session id used as a
// label by mistake must not grow memory without bound).
//
// /metrics answers only connections from loopback. Metrics name agents, plugins
// and channels and show usage and cost, and a scrape endpoint has no device
// identity to pair, so remote scraping is refused rather than half-authenticated:
// scrape from the same host (a Prometheus or agent on the box), or through an SSH
// tunnel, or a reverse proxy on the host that does its own authentication.

export type Labels = Record<string, string>;

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
export const MAX_SERIES = 500;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function fmt(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}

abstract class Metric {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly #series = new Map<string, { labels: Labels; value: number }>();
  readonly #onDrop: () => void;
  abstract readonly type: 'counter' | 'gauge';

  constructor(name: string, help: string, labelNames: readonly string[], onDrop: () => void) {
    if (!NAME.test(name)) throw new Error(`invalid metric name ${name}`);
    for (const l of labelNames) if (!LABEL.test(l) || l.startsWith('__')) throw new Error(`invalid label name ${l} on ${name}`);
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
    this.#onDrop = onDrop;
  }

  protected slot(labels: Labels = {}): { labels: Labels; value: number } | null {
    const keys = Object.keys(labels);
    if (keys.length !== this.labelNames.length || keys.some((k) => !this.labelNames.includes(k))) {
      throw new Error(`${this.name} takes labels [${this.labelNames.join(', ')}], not [${keys.join(', ')}]`);
    }
    const key = this.labelNames.map((l) => String(labels[l])).join('\u0000');
    let s = this.#series.get(key);
    if (!s) {
      if (this.#series.size >= MAX_SERIES) {
        this.#onDrop();
        return null;
      }
      s = { labels: Object.fromEntries(this.labelNames.map((l) => [l, String(labels[l])])), value: 0 };
      this.#series.set(key, s);
    }
    return s;
  }

  /** The current value of one series (0 when it has never been touched). */
  value(labels: Labels = {}): number {
    return this.#series.get(this.labelNames.map((l) => String(labels[l])).join('\u0000'))?.value ?? 0;
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`];
    if (this.#series.size === 0 && this.labelNames.length === 0) lines.push(`${this.name} 0`);
    for (const s of this.#series.values()) {
      const l = this.labelNames.map((k) => `${k}="${escapeLabel(s.labels[k])}"`).join(',');
      lines.push(`${this.name}${l ? `{${l}}` : ''} ${fmt(s.value)}`);
    }
    return lines.join('\n');
  }
}

export class Counter extends Metric {
  readonly type = 'counter';
  inc(labels?: Labels, by = 1): void {
    if (!(by >= 0) || !Number.isFinite(by)) throw new Error(`${this.name}: a counter only goes up (got ${by})`);
    const s = this.slot(labels);
    if (s) s.value += by;
  }
}

export class Gauge extends Metric {
  readonly type = 'gauge';
  set(value: number, labels?: Labels): void {
    const s = this.slot(labels);
    if (s) s.value = value;
  }
  inc(labels?: Labels, by = 1): void {
    const s = this.slot(labels);
    if (s) s.value += by;
  }
  dec(labels?: Labels, by = 1): void {
    this.inc(labels, -by);
  }
}

export class MetricsRegistry {
  readonly #metrics = new Map<string, Metric>();
  readonly #collectors: (() => void)[] = [];
  readonly #dropped: Counter;

  constructor() {
    this.#dropped = this.counter({ name: 'carapace_metrics_series_dropped_total', help: 'Samples dropped because a metric reached its series cap' });
  }

  #declare<M extends Metric>(def: MetricDef, make: () => M, type: M['type']): M {
    const existing = this.#metrics.get(def.name);
    if (existing) {
      if (existing.type !== type || existing.labelNames.join() !== (def.labels ?? []).join()) {
        throw new Error(`metric ${def.name} is already declared as a ${existing.type} with labels [${existing.labelNames.join(', ')}]`);
      }
      return existing as M;
    }
    const m = make();
    this.#metrics.set(def.name, m);
    return m;
  }

  /** Declare (or get the already declared) counter. */
  counter(def: MetricDef): Counter {
    return this.#declare(def, () => new Counter(def.name, def.help, def.labels ?? [], () => this.#dropped.inc()), 'counter');
  }

  gauge(def: MetricDef): Gauge {
    return this.#declare(def, () => new Gauge(def.name, def.help, def.labels ?? [], () => this.#dropped.inc()), 'gauge');
  }

  /** Run just before each scrape: for gauges that are read rather than pushed (queue depth, memory). */
  onCollect(fn: () => void): void {
    this.#collectors.push(fn);
  }

  render(): string {
    for (const fn of this.#collectors) {
      try {
        fn();
      } catch {
        // one broken collector must not take the whole scrape down
      }
    }
    return [...this.#metrics.values()].map((m) => m.render()).join('\n') + '\n';
  }
}

export interface MetricDef {
  name: string;
  help: string;
  labels?: readonly string[];
}

/** The metrics every part of Carapace shares; declare with registry.counter(METRIC.x) / gauge(METRIC.x). */
export const METRIC = {
  runs: { name: 'carapace_agent_runs_total', help: 'Agent runs finished, by agent and outcome', labels: ['agent', 'status'] },
  tokens: { name: 'carapace_tokens_total', help: 'LLM tokens used, by provider and direction (input, output)', labels: ['provider', 'direction'] },
  cost: { name: 'carapace_cost_usd_total', help: 'Estimated LLM cost in US dollars, by provider', labels: ['provider'] },
  queueDepth: { name: 'carapace_delivery_queue_depth', help: 'Outbound messages waiting in the delivery queue', labels: [] },
  pluginRestarts: { name: 'carapace_plugin_restarts_total', help: 'Plugin restarts after a crash or timeout, by plugin', labels: ['plugin'] },
  busConnections: { name: 'carapace_bus_connections', help: 'Open bus connections, by role', labels: ['role'] },
  handshakeFailures: { name: 'carapace_bus_handshake_failures_total', help: 'Failed bus handshakes, by error code', labels: ['code'] },
} as const satisfies Record<string, MetricDef>;

/** 127.0.0.0/8, ::1, and IPv4-mapped loopback. */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4) || address === '::1';
}

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export interface MetricsService extends Service {
  readonly metrics: MetricsRegistry;
}

export function createMetricsService(ctx: KernelContext, _registry?: ServiceRegistry): MetricsService {
  const metrics = new MetricsRegistry();
  for (const def of Object.values(METRIC)) {
    if (def.name.endsWith('_total')) metrics.counter(def);
    else metrics.gauge(def);
  }
  const info = metrics.gauge({ name: 'carapace_build_info', help: 'Always 1; the running Carapace and Node.js versions', labels: ['version', 'node'] });
  info.set(1, { version: ctx.version, node: process.versions.node });
  const uptime = metrics.gauge({ name: 'carapace_uptime_seconds', help: 'Seconds since the gateway started' });
  const rss = metrics.gauge({ name: 'process_resident_memory_bytes', help: 'Resident set size of the gateway process' });
  const heap = metrics.gauge({ name: 'nodejs_heap_used_bytes', help: 'V8 heap in use' });
  metrics.onCollect(() => {
    uptime.set((ctx.clock.now() - ctx.startedAt) / 1000);
    const mem = process.memoryUsage();
    rss.set(mem.rss);
    heap.set(mem.heapUsed);
  });
  const refused = metrics.counter({ name: 'carapace_metrics_remote_refused_total', help: 'Scrapes refused because they did not come from loopback' });

  return {
    name: 'metrics',
    metrics,
    routes(app: FastifyInstance) {
      app.get('/metrics', async (req, reply) => {
        if (!isLoopback(req.socket.remoteAddress)) {
          refused.inc();
          return reply.code(403).type('text/plain; charset=utf-8').send('metrics are served to loopback only: scrape from this host or through an SSH tunnel\n');
        }
        return reply.type(CONTENT_TYPE).header('cache-control', 'no-store').send(metrics.render());
      });
    },
  };
}
