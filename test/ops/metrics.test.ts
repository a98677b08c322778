import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tempHome } from '../helpers/home.ts';
import { spawnGateway } from '../helpers/gateway.ts';
import { startGateway } from '../../core/gateway/gateway.ts';
import { createMetricsService, METRIC, MAX_SERIES, MetricsRegistry, type MetricsService } from '../../core/ops/metrics.ts';
import type { Service } from '../../core/kernel.ts';

// The text exposition format 0.0.4, line by line.
const HELP = /^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$/;
const TYPE = /^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped)$/;
const SAMPLE = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$/;

function checkExposition(text: string): Map<string, string> {
  assert.ok(text.endsWith('\n'));
  const types = new Map<string, string>();
  for (const line of text.slice(0, -1).split('\n')) {
    if (line.startsWith('# HELP')) assert.match(line, HELP);
    else if (line.startsWith('# TYPE')) {
      assert.match(line, TYPE);
      const [, , name, type] = line.split(' ');
      assert.equal(types.has(name), false, `${name} has one TYPE line`);
      types.set(name, type);
    } else {
      assert.match(line, SAMPLE, `not a sample line: ${line}`);
      const name = line.split(/[{ ]/)[0];
      assert.ok(types.has(name), `${name} is sampled after its TYPE line`);
    }
  }
  return types;
}

test('GET /metrics on a running gateway answers in the Prometheus text format with the shared metrics declared', async (t) => {
  const home = tempHome('metrics');
  t.after(home.cleanup);
  const gw = await spawnGateway(home.dir);
  t.after(() => gw.stop());
  const res = await fetch(`${gw.url}/metrics`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  const text = await res.text();
  const types = checkExposition(text);
  for (const def of Object.values(METRIC)) assert.equal(types.get(def.name), def.name.endsWith('_total') ? 'counter' : 'gauge', def.name);
  assert.match(text, /^carapace_build_info\{version="[^"]+",node="24\.[^"]+"\} 1$/m);
  assert.match(text, /^process_resident_memory_bytes [1-9][0-9]*$/m);
});

test('another service increments a shared counter through registry.get("metrics") and the scrape shows it, labels escaped', async (t) => {
  const home = tempHome('metrics');
  t.after(home.cleanup);
  const user = (_ctx: unknown, registry: { get<T extends Service>(n: string): T }): Service => {
    const m = registry.get<MetricsService>('metrics').metrics;
    m.counter(METRIC.runs).inc({ agent: 'main', status: 'ok' }, 2);
    m.counter(METRIC.pluginRestarts).inc({ plugin: 'we"ird\\name\nx' });
    m.gauge(METRIC.queueDepth).set(7);
    return { name: 'user' };
  };
  const gw = await startGateway({ home: home.dir, port: 0, logStream: null, services: [createMetricsService, user] });
  t.after(() => gw.stop());
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  checkExposition(text);
  assert.match(text, /^carapace_agent_runs_total\{agent="main",status="ok"\} 2$/m);
  assert.match(text, /^carapace_plugin_restarts_total\{plugin="we\\"ird\\\\name\\nx"\} 1$/m);
  assert.match(text, /^carapace_delivery_queue_depth 7$/m);
});

test('/metrics refuses a scrape that does not come from loopback, and says how to scrape', async (t) => {
  const home = tempHome('metrics');
  t.after(home.cleanup);
  const gw = await startGateway({ home: home.dir, port: 0, logStream: null, services: [createMetricsService] });
  t.after(() => gw.stop());
  const remote = await gw.app.inject({ method: 'GET', url: '/metrics', remoteAddress: '192.0.2.10' });
  assert.equal(remote.statusCode, 403);
  assert.match(remote.body, /loopback only/);
  const mapped = await gw.app.inject({ method: 'GET', url: '/metrics', remoteAddress: '::ffff:192.0.2.10' });
  assert.equal(mapped.statusCode, 403);
  const v6 = await gw.app.inject({ method: 'GET', url: '/metrics', remoteAddress: '::1' });
  assert.equal(v6.statusCode, 200);
  assert.match(v6.body, /^carapace_metrics_remote_refused_total 2$/m);
});

test('a metric caps its series so a runaway label cannot grow memory, counting what it dropped', () => {
  const m = new MetricsRegistry();
  const c = m.counter({ name: 't_total', help: 'x', labels: ['id'] });
  for (let i = 0; i < MAX_SERIES + 10; i++) c.inc({ id: String(i) });
  const text = m.render();
  assert.equal(text.split('\n').filter((l) => l.startsWith('t_total{')).length, MAX_SERIES);
  assert.match(text, /^carapace_metrics_series_dropped_total 10$/m);
  assert.throws(() => c.inc({ id: '1' }, -1), /only goes up/);
  assert.throws(() => m.gauge({ name: 't_total', help: 'x' }), /already declared as a counter/);
});
