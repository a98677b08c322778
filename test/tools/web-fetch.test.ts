import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { htmlToText, tools } from '../../plugins/tools/web-fetch/index.js';

// The kernel's net capability (SSRF checks) is the plugin host's; here a stub
// `carapace` forwards to a real loopback server so the tool sees real HTTP.
let server: Server;
let base: string;
let wakeSleepers: (() => void)[] = [];
const pages: Record<string, { type: string; body: string; status?: number } | 'hang'> = {};

before(async () => {
  server = createServer((req, res) => {
    const p = pages[req.url ?? ''];
    if (p === 'hang') return; // never answers
    if (!p) return void res.writeHead(404, { 'content-type': 'text/plain' }).end('nope');
    res.writeHead(p.status ?? 200, { 'content-type': p.type }).end(p.body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
after(() => {
  server.closeAllConnections();
  server.close();
});

function install(config: Record<string, unknown> = {}) {
  const fetched: string[] = [];
  (globalThis as { carapace?: unknown }).carapace = {
    config,
    net: {
      async fetch(url: string, init: { method?: string; headers?: Record<string, string> }) {
        fetched.push(url);
        const r = await fetch(url, { method: init.method, headers: init.headers });
        return { status: r.status, statusText: r.statusText, headers: Object.fromEntries(r.headers), url: r.url, body: await r.text() };
      },
    },
    timers: { sleep: () => new Promise<void>((r) => wakeSleepers.push(r)) },
  };
  return fetched;
}
const webFetch = tools[0];

test('html is turned into readable text without scripts, styles or comments', () => {
  const { title, text } = htmlToText(`<!doctype html><html><head><title>The &amp; Title</title><style>body{color:red}</style>
    <script>alert("x<y>")</script></head><body><!-- hidden --><h1>Heading</h1><p>One&nbsp;two &lt;three&gt; &#x41;&#66;</p>
    <ul><li>first</li><li>second</li></ul><p>see <a href="https://example.com/x">the link</a><br>next line</p>
    <script type="text/javascript">var s = "</scr" + "ipt>";</script><noscript>enable js</noscript></body></html>`);
  assert.equal(title, 'The & Title');
  assert.match(text, /^# Heading/m);
  assert.match(text, /One two <three> AB/);
  assert.match(text, /^- first$/m);
  assert.match(text, /the link \(https:\/\/example\.com\/x\)/);
  assert.match(text, /^next line$/m);
  assert.doesNotMatch(text, /alert|color:red|hidden|enable js|ipt>/);
});

test('attribute values containing > do not leak markup into the text', () => {
  const { text } = htmlToText('<p title="a > b">visible</p><img alt="cat > dog" src=x>');
  assert.equal(text, 'visible\n\n[image: cat > dog]');
});

test('hostile markup is converted in linear time without throwing', () => {
  const nasty = '<a href="'.repeat(20000) + '<<<<' + '&#99999999;'.repeat(1000) + '<script>'.repeat(1000);
  assert.equal(typeof htmlToText(nasty).text, 'string');
  assert.equal(htmlToText('&#0;&#xD800;&bogus;').text, '\uFFFD\uFFFD&bogus;');
});

test('web_fetch returns a page as text with its title', async () => {
  install();
  pages['/page'] = { type: 'text/html; charset=utf-8', body: '<title>Hi</title><p>Hello <b>web</b></p>' };
  const r = await webFetch.run({ url: `${base}/page` });
  assert.equal(r.isError, false);
  assert.match(r.content, /Title: Hi/);
  assert.match(r.content, /Hello web/);
});

test('web_fetch caps what reaches the model', async () => {
  install();
  pages['/big'] = { type: 'text/plain', body: 'x'.repeat(10_000) };
  const r = await webFetch.run({ url: `${base}/big`, maxChars: 500 });
  assert.equal((r.data as { truncated: boolean }).truncated, true);
  assert.match(r.content, /truncated to 500 chars/);
  assert.ok(r.content.length < 700);
});

test('web_fetch gives up at its time limit', async () => {
  install({ timeoutMs: 1000 });
  pages['/hang'] = 'hang';
  wakeSleepers = [];
  const pending = webFetch.run({ url: `${base}/hang` });
  await new Promise((r) => setImmediate(r));
  assert.equal(wakeSleepers.length, 1, 'the tool armed its time limit');
  wakeSleepers[0]();
  const r = await pending;
  assert.equal(r.isError, true);
  assert.match(r.content, /timed out after 1000 ms/);
});

test('web_fetch refuses non-http schemes and credentials in URLs before fetching', async () => {
  const fetched = install();
  for (const url of ['file:///etc/passwd', 'ftp://example.com/', 'javascript:alert(1)', 'not a url', 'http://user:pw@example.com/']) {
    const r = await webFetch.run({ url });
    assert.equal(r.isError, true, url);
    assert.match(r.content, /^refused: /);
  }
  assert.deepEqual(fetched, []);
});

test('web_fetch refuses binary content', async () => {
  install();
  pages['/bin'] = { type: 'application/octet-stream', body: 'PK\u0003\u0004' };
  const r = await webFetch.run({ url: `${base}/bin` });
  assert.equal(r.isError, true);
  assert.match(r.content, /not text/);
});

test('a refusal from the kernel net capability is reported', async () => {
  install();
  (globalThis as unknown as { carapace: { net: { fetch: unknown } } }).carapace.net.fetch = async () => {
    throw new Error('FORBIDDEN: 169.254.169.254 is a link-local address');
  };
  const r = await webFetch.run({ url: 'http://169.254.169.254/latest/meta-data' });
  assert.equal(r.isError, true);
  assert.match(r.content, /link-local/);
});
