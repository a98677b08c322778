// The `web_fetch` tool (isolate runtime). Fetches through the injected
// `carapace.net.fetch`, whose kernel side does the SSRF checks (private and
// loopback addresses, redirects re-checked, size caps). This side adds a time
// cap, a size cap on what reaches the model, and HTML → readable text.

const DEFAULT_MAX_CHARS = 50_000;
const HARD_MAX_CHARS = 200_000;
const MAX_BODY_CHARS = 5 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 15_000;

// ------------------------------------------------------------ HTML → text
// A single left-to-right scan with indexOf: no DOM, no backtracking regexes over
// the document, so hostile markup costs linear time.

const DROP = new Set(['script', 'style', 'noscript', 'template', 'svg', 'math', 'iframe', 'object', 'canvas', 'head', 'select', 'textarea']);
const BLOCK = new Set([
  'p', 'div', 'section', 'article', 'main', 'header', 'footer', 'nav', 'aside', 'blockquote', 'pre', 'table', 'tr',
  'ul', 'ol', 'dl', 'dt', 'dd', 'form', 'fieldset', 'figure', 'figcaption', 'address', 'hr', 'body', 'html', 'details', 'summary',
]);
const HEADINGS = { h1: '# ', h2: '## ', h3: '### ', h4: '#### ', h5: '##### ', h6: '###### ' };
const NAMED = {
  amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ', copy: '©', reg: '®', trade: '™', hellip: '…',
  mdash: '—', ndash: '–', lsquo: '‘', rsquo: '’', ldquo: '“', rdquo: '”', laquo: '«', raquo: '»', middot: '·', bull: '•',
  euro: '€', pound: '£', yen: '¥', cent: '¢', deg: '°', times: '×', divide: '÷', shy: '',
};

export function decodeEntities(s) {
  return s.replace(/&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]{2,8});/g, (m, body) => {
    if (body[0] === '#') {
      const n = body[1] === 'x' || body[1] === 'X' ? parseInt(body.slice(2), 16) : parseInt(body.slice(1), 10);
      if (!Number.isFinite(n) || n <= 0 || n > 0x10ffff || (n >= 0xd800 && n <= 0xdfff)) return '\uFFFD';
      return String.fromCodePoint(n);
    }
    const v = NAMED[body.toLowerCase()];
    return v === undefined ? m : v;
  });
}

function attr(tag, name) {
  const re = new RegExp(`\\s${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)'|([^\\s"'>]+))`, 'i');
  const m = re.exec(tag);
  return m ? decodeEntities(m[1] ?? m[2] ?? m[3] ?? '') : null;
}

/** End of a tag starting at `lt`, skipping `>` inside quoted attribute values; -1 if unterminated. */
function tagEnd(html, lt) {
  let quote = null;
  for (let i = lt + 1; i < html.length; i++) {
    const c = html[i];
    if (quote) {
      if (c === quote) quote = null;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '>') return i;
  }
  return -1;
}

export function htmlToText(html) {
  const lower = html.toLowerCase();
  const out = [];
  let title = '';
  let pre = 0;
  const links = [];
  let i = 0;
  const text = (s) => {
    if (!s) return;
    const t = decodeEntities(s);
    out.push(pre > 0 ? t : t.replace(/\s+/g, ' '));
  };
  while (i < html.length) {
    const lt = html.indexOf('<', i);
    if (lt < 0) {
      text(html.slice(i));
      break;
    }
    text(html.slice(i, lt));
    if (html.startsWith('<!--', lt)) {
      const end = html.indexOf('-->', lt + 4);
      i = end < 0 ? html.length : end + 3;
      continue;
    }
    const m = /^<(\/?)([a-zA-Z][a-zA-Z0-9-]{0,31})/.exec(html.slice(lt, lt + 40));
    if (!m) {
      if (html[lt + 1] === '!' || html[lt + 1] === '?') {
        const end = html.indexOf('>', lt);
        i = end < 0 ? html.length : end + 1;
      } else {
        text('<');
        i = lt + 1;
      }
      continue;
    }
    const end = tagEnd(html, lt);
    if (end < 0) break;
    const closing = m[1] === '/';
    const name = m[2].toLowerCase();
    const tag = html.slice(lt, end + 1);
    i = end + 1;
    if (!closing && (name === 'title' || DROP.has(name))) {
      const close = lower.indexOf(`</${name}`, i);
      const inner = close < 0 ? html.slice(i) : html.slice(i, close);
      if (name === 'title' && !title) title = decodeEntities(inner).replace(/\s+/g, ' ').trim();
      if (name === 'head') {
        const t = /<title[^>]{0,200}>([^<]{0,500})/i.exec(inner);
        if (t && !title) title = decodeEntities(t[1]).replace(/\s+/g, ' ').trim();
      }
      if (close < 0) break;
      const gt = html.indexOf('>', close);
      i = gt < 0 ? html.length : gt + 1;
      continue;
    }
    if (name === 'br') out.push('\n');
    else if (name === 'li') out.push(closing ? '\n' : '\n- ');
    else if (name in HEADINGS) out.push(closing ? '\n\n' : `\n\n${HEADINGS[name]}`);
    else if (name === 'td' || name === 'th') out.push(closing ? '' : ' | ');
    else if (name === 'img' && !closing) {
      const alt = attr(tag, 'alt');
      if (alt) out.push(`[image: ${alt}]`);
    } else if (name === 'a') {
      if (!closing) {
        const href = attr(tag, 'href');
        links.push(href && /^https?:\/\//i.test(href) ? href : null);
      } else {
        const href = links.pop();
        if (href) out.push(` (${href})`);
      }
    } else if (name === 'pre') {
      pre += closing ? -1 : 1;
      if (pre < 0) pre = 0;
      out.push('\n\n');
    } else if (BLOCK.has(name)) out.push('\n\n');
  }
  const body = out
    .join('')
    .replace(/[ \t\u00a0]+\n/g, '\n')
    .replace(/\n[ \t\u00a0]+/g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
  return { title, text: body };
}

// ------------------------------------------------------------ the tool

function cap() {
  return globalThis.carapace;
}

function err(content) {
  return { content, isError: true };
}

async function withTimeout(promise, ms) {
  let timedOut = false;
  const timer = cap().timers.sleep(ms).then(() => {
    timedOut = true;
  });
  const r = await Promise.race([promise, timer]);
  if (timedOut) throw new Error(`timed out after ${ms} ms`);
  return r;
}

/**
 * An isolate is plain V8: there is no `URL` global. Enough of a parse to refuse
 * other schemes and credentials here; the kernel's egress parses and checks the
 * URL in full (host, port, address) before anything connects.
 */
function parseUrl(text) {
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/([^/?#\s]*)([^\s]*)$/.exec(text.trim());
  if (!m || m[2] === '') return null;
  return { protocol: `${m[1].toLowerCase()}:`, hasCredentials: m[2].includes('@'), href: text.trim() };
}

export const tools = [
  {
    name: 'web_fetch',
    description: 'Fetch a web page (http/https) and return it as readable text.',
    input: {
      type: 'object',
      properties: {
        url: { type: 'string', maxLength: 4096 },
        maxChars: { type: 'integer', minimum: 100, maximum: HARD_MAX_CHARS },
      },
      required: ['url'],
      additionalProperties: false,
    },
    async run(input) {
      const config = cap().config ?? {};
      const url = parseUrl(String(input?.url ?? ''));
      if (!url) return err('refused: url is not a valid absolute URL');
      if (url.protocol !== 'http:' && url.protocol !== 'https:') return err(`refused: only http and https URLs are fetched, not ${url.protocol}`);
      if (url.hasCredentials) return err('refused: URLs with credentials are not fetched');
      const maxChars = Math.min(Number(input.maxChars) || Number(config.maxChars) || DEFAULT_MAX_CHARS, HARD_MAX_CHARS);
      const timeoutMs = Math.min(Number(config.timeoutMs) || DEFAULT_TIMEOUT_MS, 60_000);
      let res;
      try {
        res = await withTimeout(
          cap().net.fetch(url.href, {
            method: 'GET',
            headers: { accept: 'text/html,application/xhtml+xml,text/plain,application/json;q=0.9,*/*;q=0.1' },
            timeoutMs,
          }),
          timeoutMs,
        );
      } catch (e) {
        return err(`fetch failed: ${e && e.message ? e.message : String(e)}`);
      }
      const type = String(res.headers?.['content-type'] ?? '').toLowerCase();
      const isHtml = type.includes('html') || (!type && /^\s*<(!doctype|html)/i.test(res.body.slice(0, 200)));
      const isText = isHtml || !type || type.startsWith('text/') || type.includes('json') || type.includes('xml');
      if (!isText) return err(`not fetched: ${res.url} is ${type}, not text`);
      let body = res.body;
      let truncated = false;
      if (body.length > MAX_BODY_CHARS) {
        body = body.slice(0, MAX_BODY_CHARS);
        truncated = true;
      }
      const { title, text } = isHtml ? htmlToText(body) : { title: '', text: body };
      let content = text;
      if (content.length > maxChars) {
        content = content.slice(0, maxChars);
        truncated = true;
      }
      const head = [`URL: ${res.url}`, `Status: ${res.status}`];
      if (title) head.push(`Title: ${title}`);
      if (truncated) head.push(`[truncated to ${maxChars} chars]`);
      return {
        content: `${head.join('\n')}\n\n${content}`,
        isError: res.status >= 400,
        data: { url: res.url, status: res.status, title, truncated, contentType: type },
      };
    },
  },
];
