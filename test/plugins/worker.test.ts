import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { makePlugin, throwawayPublisher } from '../helpers/plugins.ts';
import { startHost, stateOf } from '../helpers/plugin-host.ts';
import { mapSecrets } from '../../core/secrets/source.ts';
import { readInstallRecord, writeInstallRecord } from '../../core/plugins/installed.ts';

const SECRET = 'sk-worker-secret-456789';
let server: Server;
let port = 0;
let lastAuth: string | undefined;
let lastBody = '';

const CODE = `
import OpenAI from 'openai';
export const tools = [
  { name: 'envprobe', async run() { return JSON.stringify({ keys: Object.keys(process.env), hasCarapace: typeof carapace.net.webFetch }); } },
  { name: 'stream', async run(input) {
    const res = await carapace.net.webFetch(input.url, { headers: { authorization: 'Bearer {{secret:TOKEN}}' } });
    const reader = res.body.getReader();
    const parts = [];
    for (;;) { const { done, value } = await reader.read(); if (done) break; parts.push(new TextDecoder().decode(value)); }
    return JSON.stringify({ status: res.status, parts });
  } },
  { name: 'sdk', async run(input) {
    const client = new OpenAI({ apiKey: '{{secret:TOKEN}}', baseURL: input.baseURL, fetch: carapace.net.webFetch, maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }], stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    return text;
  } },
  { name: 'postbody', async run(input) {
    const res = await carapace.net.webFetch(input.url, { method: 'POST', headers: { authorization: 'Bearer {{secret:TOKEN}}' }, body: JSON.stringify({ said: 'echo {{secret:TOKEN}}' }) });
    await res.text();
    return String(res.status);
  } },
  { name: 'denied', async run() { try { await carapace.net.webFetch('http://example.com/'); return 'fetched'; } catch (e) { return 'refused: ' + e.message; } } },
  { name: 'hang', async run() { for (;;) {} } },
];
`;
const TOOLS = ['envprobe', 'stream', 'sdk', 'postbody', 'denied', 'hang'];

before(async () => {
  server = createServer((req, res) => {
    lastAuth = req.headers.authorization;
    lastBody = '';
    req.on('data', (d) => (lastBody += d));
    if (req.url === '/v1/chat/completions') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      for (const word of ['Hel', 'lo']) res.write(`data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { content: word }, finish_reason: null }] })}\n\n`);
      return res.end('data: [DONE]\n\n');
    }
    if (req.url === '/echo-split') {
      // The credential comes back cut in two, across separate chunks.
      const auth = req.headers.authorization ?? '';
      const cut = auth.length - 5;
      res.write(`auth=${auth.slice(0, cut)}`);
      return setTimeout(() => res.end(`${auth.slice(cut)};end`), 20);
    }
    res.write('one;');
    setTimeout(() => res.end('two'), 20);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as AddressInfo).port;
});
after(() => server.close());

function workerPlugin(kp: Parameters<typeof makePlugin>[2]) {
  return makePlugin({ 'index.js': CODE }, {
    id: 'wprov',
    runtime: 'worker',
    permissions: { net: [`127.0.0.1:${port}`], secrets: { TOKEN: ['127.0.0.1'] } },
    limits: { memoryMb: 64, callTimeoutMs: 3000 },
    provides: { tools: TOOLS.map((name) => ({ name, description: name, input: { type: 'object' } })) },
  }, kp);
}

test('a third-party worker plugin is refused without the explicit allow, and nothing else stops', async (t) => {
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const p = workerPlugin(pub.kp);
  t.after(p.cleanup);
  await assert.rejects(startHost(t, [p], pub.kp), (err: Error) => /worker runtime/.test(err.message) && (err as { reason?: string }).reason === 'worker-not-allowed');
  // An install record without the allow (edited by hand, or from an older grant) is refused at load.
  const fx = await startHost(t, [p], pub.kp, { allowWorker: true });
  const rec = readInstallRecord(fx.paths.pluginsDir, 'wprov')!;
  writeInstallRecord(fx.paths.pluginsDir, { ...rec, allowWorker: false, granted: rec.granted.filter((g) => g !== 'worker') });
  const fx2 = await startHost(t, [], pub.kp, { paths: fx.paths });
  const st = fx2.host.list().find((x) => x.id === 'wprov')!;
  assert.equal(st.state, 'refused');
  assert.equal(st.refusal, 'worker-not-allowed');
  assert.match((await fx2.host.invokeTool('clock_now', {}, { agentId: 'a', sessionKey: 's' })).content, /UTC/);
});

test('worker plugins run with an empty environment and get webFetch', async (t) => {
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const p = workerPlugin(pub.kp);
  t.after(p.cleanup);
  const fx = await startHost(t, [p], pub.kp, { allowWorker: true, secrets: mapSecrets({ TOKEN: SECRET }) });
  const r = JSON.parse((await fx.host.invokeTool('envprobe', {}, { agentId: 'a', sessionKey: 's' })).content);
  assert.deepEqual(r, { keys: [], hasCarapace: 'function' });
});

test('webFetch streams the body and substitutes secrets for listed hosts only', async (t) => {
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const p = workerPlugin(pub.kp);
  t.after(p.cleanup);
  const fx = await startHost(t, [p], pub.kp, { allowWorker: true, secrets: mapSecrets({ TOKEN: SECRET }) });
  const r = JSON.parse((await fx.host.invokeTool('stream', { url: `http://127.0.0.1:${port}/s` }, { agentId: 'a', sessionKey: 's' })).content);
  assert.equal(r.status, 200);
  assert.equal(r.parts.join(''), 'one;two');
  assert.equal(lastAuth, `Bearer ${SECRET}`);
  assert.match((await fx.host.invokeTool('denied', {}, { agentId: 'a', sessionKey: 's' })).content, /refused: .*example\.com/);
});

test('a secret the server echoes back split across chunks is still scrubbed before the plugin reads it', async (t) => {
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const p = workerPlugin(pub.kp);
  t.after(p.cleanup);
  const fx = await startHost(t, [p], pub.kp, { allowWorker: true, secrets: mapSecrets({ TOKEN: SECRET }) });
  const r = JSON.parse((await fx.host.invokeTool('stream', { url: `http://127.0.0.1:${port}/echo-split` }, { agentId: 'a', sessionKey: 's' })).content);
  assert.equal(lastAuth, `Bearer ${SECRET}`, 'the server got the real value');
  assert.equal((r.parts as string[]).join(''), 'auth=Bearer [redacted];end', 'no byte of the value reached the plugin');
});

test('webFetch fills secrets into headers only: a placeholder in a body (a conversation) goes out as written', async (t) => {
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const p = workerPlugin(pub.kp);
  t.after(p.cleanup);
  const fx = await startHost(t, [p], pub.kp, { allowWorker: true, secrets: mapSecrets({ TOKEN: SECRET }) });
  await fx.host.invokeTool('postbody', { url: `http://127.0.0.1:${port}/p` }, { agentId: 'a', sessionKey: 's' });
  assert.equal(lastAuth, `Bearer ${SECRET}`);
  assert.doesNotMatch(lastBody, new RegExp(SECRET));
  assert.match(lastBody, /echo \{\{secret:TOKEN\}\}/);
});

test('the OpenAI SDK streams through webFetch with apiKey {{secret:NAME}}', async (t) => {
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const p = workerPlugin(pub.kp);
  t.after(p.cleanup);
  const fx = await startHost(t, [p], pub.kp, { allowWorker: true, secrets: mapSecrets({ TOKEN: SECRET }) });
  const r = await fx.host.invokeTool('sdk', { baseURL: `http://127.0.0.1:${port}/v1` }, { agentId: 'a', sessionKey: 's' });
  assert.equal(r.content, 'Hello', r.content);
  assert.equal(lastAuth, `Bearer ${SECRET}`);
});

test('a stuck worker is terminated at the call timeout and restarted', async (t) => {
  const pub = throwawayPublisher();
  t.after(pub.cleanup);
  const p = workerPlugin(pub.kp);
  t.after(p.cleanup);
  const fx = await startHost(t, [p], pub.kp, { allowWorker: true, secrets: mapSecrets({ TOKEN: SECRET }) });
  await assert.rejects(fx.host.invokeTool('hang', {}, { agentId: 'a', sessionKey: 's' }), /timeout/);
  await fx.waitFor(() => stateOf(fx.host, 'wprov') === 'running', 'worker restart');
  assert.match((await fx.host.invokeTool('envprobe', {}, { agentId: 'a', sessionKey: 's' })).content, /keys/);
});
