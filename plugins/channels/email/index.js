// Email channel (isolate runtime). A deliberately small IMAP4rev1 and SMTP client
// over `carapace.net.connect(host, port, {tls})`: the isolate is enough (no
// parsing library is needed for the subset a chat channel uses) and keeps the
// mailbox password behind `{{secret:...}}` placeholders the kernel substitutes in
// socket writes to the configured servers only.
//
// Inbound: LOGIN, SELECT INBOX, fetch every UID above the last one seen (kept in
// kv with UIDVALIDITY, so restarts neither lose nor repeat mail), then IDLE (or a
// NOOP poll when the server lacks IDLE) and fetch again on EXISTS. Only senders in
// `allowFrom` are published (when set); a From header is easy to forge, so the
// core's pairing/allowlist still applies. HTML-only mail is turned into text.
// Threads: the thread id is the root Message-ID (first of References, else
// In-Reply-To, else the message's own id); replies carry In-Reply-To/References.
// IMAP: implicit TLS (`tls: true`, 993), STARTTLS (`tls: "starttls"`, 143; refused
// when not offered) or plain (`tls: false`).
// Outbound: SMTP with implicit TLS (`tls: true`, 465), STARTTLS (`tls: "starttls"`,
// 587: refused outright, never sent in clear, when the server does not offer it)
// or plain (`tls: false`, loopback/relay). AUTH PLAIN uses `{{secret:SMTP_AUTH_PLAIN}}`
// (base64 of "\0user\0password": the isolate never sees the password to encode it).
// The Message-ID derives from the idempotency key, so a redelivery is recognisable.

const SENT_TTL_MS = 7 * 24 * 3600 * 1000;

let cfg = {};
let running = false;
let gen = 0;
let imap = null;
let backoff = 1000;
let counter = 0;

function cap() {
  return globalThis.carapace;
}

function channelError(message, retryable, retryAfterMs) {
  const err = new Error(message);
  err.name = 'ChannelSendError';
  err.retryable = retryable;
  if (retryAfterMs !== undefined) err.retryAfterMs = retryAfterMs;
  return err;
}

// ------------------------------------------------------------------ codecs (no Buffer/TextDecoder in an isolate)

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** base64 → binary string (one char per byte). */
function b64decode(s) {
  const clean = s.replace(/[^A-Za-z0-9+/]/g, '');
  let out = '';
  let bits = 0;
  let acc = 0;
  for (let i = 0; i < clean.length; i++) {
    acc = (acc << 6) | B64.indexOf(clean[i]);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += String.fromCharCode((acc >> bits) & 0xff);
    }
  }
  return out;
}

/** binary string → base64. */
function b64encode(bin) {
  let out = '';
  for (let i = 0; i < bin.length; i += 3) {
    const a = bin.charCodeAt(i);
    const b = i + 1 < bin.length ? bin.charCodeAt(i + 1) : NaN;
    const c = i + 2 < bin.length ? bin.charCodeAt(i + 2) : NaN;
    const n = (a << 16) | ((b || 0) << 8) | (c || 0);
    out += B64[(n >> 18) & 63] + B64[(n >> 12) & 63] + (Number.isNaN(b) ? '=' : B64[(n >> 6) & 63]) + (Number.isNaN(c) ? '=' : B64[n & 63]);
  }
  return out;
}

function utf8Encode(s) {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (c < 0x80) out += String.fromCharCode(c);
    else if (c < 0x800) out += String.fromCharCode(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out += String.fromCharCode(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out += String.fromCharCode(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return out;
}

/** binary string (UTF-8 bytes) → text; invalid sequences become U+FFFD. */
function utf8Decode(bin) {
  let out = '';
  for (let i = 0; i < bin.length; ) {
    const a = bin.charCodeAt(i);
    const need = a < 0x80 ? 0 : a >= 0xf0 && a < 0xf8 ? 3 : a >= 0xe0 ? 2 : a >= 0xc0 ? 1 : -1;
    if (need < 0) {
      out += '\uFFFD';
      i++;
      continue;
    }
    let c = need === 0 ? a : a & (0x3f >> need);
    let ok = true;
    for (let k = 1; k <= need; k++) {
      const b = bin.charCodeAt(i + k);
      if (!(b >= 0x80 && b < 0xc0)) {
        ok = false;
        break;
      }
      c = (c << 6) | (b & 63);
    }
    if (!ok) {
      out += '\uFFFD';
      i++;
      continue;
    }
    out += String.fromCodePoint(c);
    i += need + 1;
  }
  return out;
}

function qpDecode(s) {
  return s.replace(/=\r?\n/g, '').replace(/=([0-9A-Fa-f]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
}

function charsetDecode(bin, charset) {
  const cs = String(charset || 'utf-8').toLowerCase();
  if (cs === 'utf-8' || cs === 'utf8' || cs === 'us-ascii') return utf8Decode(bin);
  return bin; // latin-1 and friends: bytes are code points
}

/** RFC 2047 encoded words in headers. */
function decodeWords(s) {
  return s
    .replace(/\?=\s+=\?/g, '?==?')
    .replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g, (_, cs, enc, text) =>
      charsetDecode(enc.toUpperCase() === 'B' ? b64decode(text) : qpDecode(text.replace(/_/g, ' ')), cs),
    );
}

// ------------------------------------------------------------------ MIME

function splitHead(raw) {
  const m = /\r?\n\r?\n/.exec(raw);
  return m ? [raw.slice(0, m.index), raw.slice(m.index + m[0].length)] : [raw, ''];
}

function parseHeaders(head) {
  const h = {};
  for (const line of head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const k = line.slice(0, i).trim().toLowerCase();
    if (!(k in h)) h[k] = line.slice(i + 1).trim();
  }
  return h;
}

function param(value, name) {
  const m = new RegExp(`;\\s*${name}\\s*=\\s*(?:"([^"]*)"|([^;\\s]+))`, 'i').exec(value || '');
  return m ? (m[1] ?? m[2]) : null;
}

function decodeBody(body, headers) {
  const cte = (headers['content-transfer-encoding'] || '').toLowerCase();
  const bin = cte === 'base64' ? b64decode(body) : cte === 'quoted-printable' ? qpDecode(body) : body;
  return charsetDecode(bin, param(headers['content-type'], 'charset'));
}

/** `{plain, html}` of the first text parts, walking multiparts. */
function textParts(raw, depth = 0) {
  const [head, body] = splitHead(raw);
  const headers = parseHeaders(head);
  const type = (headers['content-type'] || 'text/plain').split(';')[0].trim().toLowerCase();
  if (type.startsWith('multipart/') && depth < 8) {
    const boundary = param(headers['content-type'], 'boundary');
    const found = { plain: null, html: null };
    if (!boundary) return found;
    const parts = body.split(new RegExp(`\\r?\\n?--${boundary.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?:--)?[ \\t]*\\r?\\n?`));
    for (const p of parts.slice(1)) {
      if (!p.trim()) continue;
      const sub = textParts(p, depth + 1);
      found.plain = found.plain ?? sub.plain;
      found.html = found.html ?? sub.html;
    }
    return found;
  }
  if (/attachment/i.test(headers['content-disposition'] || '')) return { plain: null, html: null };
  if (type === 'text/plain') return { plain: decodeBody(body, headers), html: null };
  if (type === 'text/html') return { plain: null, html: decodeBody(body, headers) };
  return { plain: null, html: null };
}

const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };

function htmlToText(html) {
  return html
    .replace(/<(script|style|head)[^>]*>[\s\S]*?<\/\1\s*>/gi, '')
    .replace(/<br\s*\/?>/gi, '\n')
    .replace(/<\/(p|div|h[1-6]|li|tr|blockquote)\s*>/gi, '\n')
    .replace(/<li[^>]*>/gi, '- ')
    .replace(/<[^>]+>/g, '')
    .replace(/&(#\d+|#x[0-9a-f]+|[a-z]+);/gi, (m, e) =>
      e[0] === '#' ? String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10)) : (ENTITIES[e.toLowerCase()] ?? m),
    )
    .replace(/[ \t]+\n/g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

/** Drop the quoted history under a reply ("On ... wrote:" and `>` lines). */
function stripQuoted(text) {
  const lines = text.replace(/\r/g, '').split('\n');
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    if (/^>/.test(l)) continue;
    if (/^On .+wrote:\s*$/.test(l) || (/^On /.test(l) && /wrote:\s*$/.test(lines[i + 1] || ''))) break;
    if (/^-- $/.test(l)) break;
    out.push(l);
  }
  return out.join('\n').trim();
}

function addressOf(v) {
  const m = /<([^>]+)>/.exec(v || '');
  return (m ? m[1] : String(v || '').trim()).toLowerCase();
}

function nameOf(v) {
  const m = /^\s*"?([^"<]*?)"?\s*</.exec(decodeWords(v || ''));
  return m && m[1] ? m[1].trim() : undefined;
}

function ids(v) {
  return (String(v || '').match(/<[^<>\s]+>/g) || []).map((x) => x);
}

/** A raw RFC 5322 message as an InboundMessage plus threading data. */
function parseMail(raw) {
  const [head] = splitHead(raw);
  const h = parseHeaders(head);
  const parts = textParts(raw);
  const body = parts.plain ?? (parts.html ? htmlToText(parts.html) : '');
  const messageId = ids(h['message-id'])[0] || null;
  const refs = ids(h['references']);
  const inReplyTo = ids(h['in-reply-to'])[0] || null;
  return {
    from: addressOf(h['from']),
    fromName: nameOf(h['from']),
    subject: decodeWords(h['subject'] || ''),
    messageId,
    inReplyTo,
    references: refs,
    threadRoot: refs[0] || inReplyTo || messageId,
    autoSubmitted: (h['auto-submitted'] || 'no').toLowerCase() !== 'no' || /bulk|list|junk/i.test(h['precedence'] || ''),
    text: stripQuoted(body),
    date: h['date'] ? Date.parse(h['date']) : NaN,
  };
}

// ------------------------------------------------------------------ line-stream client

/** A line/literal reader over a stream socket. */
function streamOf(sock) {
  let buf = '';
  const waiters = [];
  let closed = null;
  const wake = () => {
    while (waiters.length) {
      const w = waiters[0];
      const r = w.try();
      if (r === undefined) {
        if (closed) {
          waiters.shift().reject(new Error(`connection closed${closed.error ? ': ' + closed.error : ''}`));
          continue;
        }
        return;
      }
      waiters.shift().resolve(r);
    }
  };
  // Bytes arrive as text decoded by the host; literals are counted in UTF-8 bytes.
  sock.onData((d) => {
    buf += utf8Encode(d);
    wake();
  });
  sock.onClose((info) => {
    closed = info || {};
    wake();
  });
  const wait = (tryFn) => new Promise((resolve, reject) => {
    waiters.push({ try: tryFn, resolve, reject });
    wake();
  });
  return {
    line: () =>
      wait(() => {
        const i = buf.indexOf('\n');
        if (i < 0) return undefined;
        const l = buf.slice(0, i).replace(/\r$/, '');
        buf = buf.slice(i + 1);
        return l;
      }),
    bytes: (n) =>
      wait(() => {
        if (buf.length < n) return undefined;
        const b = buf.slice(0, n);
        buf = buf.slice(n);
        return b;
      }),
    write: (s) => sock.write(s),
    /** Bytes received and not read yet. */
    pending: () => buf.length > 0,
    close: () => sock.close(),
    isClosed: () => Boolean(closed),
  };
}

// ------------------------------------------------------------------ IMAP

async function imapOpen() {
  const mode = cfg.imap.tls === 'starttls' ? 'starttls' : cfg.imap.tls === false ? 'plain' : 'tls';
  const sock = await cap().net.connect(String(cfg.imap.host), Number(cfg.imap.port ?? (mode === 'tls' ? 993 : 143)), { tls: mode === 'tls' });
  const s = streamOf(sock);
  let tag = 0;
  const greeting = await s.line();
  if (!/^\* (OK|PREAUTH)/i.test(greeting)) throw new Error(`imap: bad greeting ${greeting.slice(0, 80)}`);
  /** Run a command; returns untagged lines (literals inlined as {text}) and the tagged status. */
  async function cmd(text, onUntagged) {
    const t = `c${++tag}`;
    await s.write(`${t} ${text}\r\n`);
    const untagged = [];
    for (;;) {
      let line = await s.line();
      const lit = /\{(\d+)\}$/.exec(line);
      if (lit) {
        const data = await s.bytes(Number(lit[1]));
        const rest = await s.line();
        untagged.push({ line, literal: data, rest });
        continue;
      }
      if (line.startsWith(t + ' ')) {
        if (!/^\S+ OK/i.test(line)) throw new Error(`imap: ${text.split(' ')[0]} failed: ${line.slice(t.length + 1, t.length + 120)}`);
        return untagged;
      }
      if (onUntagged) onUntagged(line);
      untagged.push({ line });
    }
  }
  if (mode === 'starttls') {
    const caps = await cmd('CAPABILITY');
    if (!caps.some((u) => /^\* CAPABILITY .*\bSTARTTLS\b/i.test(u.line))) throw new Error('imap: server does not offer STARTTLS; not logging in over clear text');
    await cmd('STARTTLS');
    // Anything after the go-ahead came in clear text, possibly injected by a man in the middle.
    if (s.pending()) throw new Error('imap: server sent data after its STARTTLS go-ahead; refusing');
    await sock.startTls();
    if (s.pending()) throw new Error('imap: server sent data after its STARTTLS go-ahead; refusing');
  }
  return { s, cmd, nextTag: () => `c${++tag}` };
}

function quote(s) {
  return '"' + String(s).replace(/["\\]/g, '\\$&') + '"';
}

async function fetchNew(conn, state) {
  const found = await conn.cmd(`UID SEARCH UID ${state.lastUid + 1}:*`);
  const uids = [];
  for (const u of found) {
    const m = /^\* SEARCH(.*)$/i.exec(u.line);
    if (m) for (const x of m[1].trim().split(/\s+/)) if (x && Number(x) > state.lastUid) uids.push(Number(x));
  }
  uids.sort((a, b) => a - b);
  for (const uid of uids) {
    const rows = await conn.cmd(`UID FETCH ${uid} (UID BODY.PEEK[])`);
    const row = rows.find((r) => r.literal !== undefined);
    if (row) await handleMail(row.literal, uid);
    state.lastUid = uid;
    await cap().kv.set('imap', { uidValidity: state.uidValidity, lastUid: uid });
  }
}

async function handleMail(rawBin, uid) {
  const raw = rawBin; // headers are ASCII; bodies are decoded per part charset
  const mail = parseMail(raw);
  const allow = (Array.isArray(cfg.allowFrom) ? cfg.allowFrom : []).map((a) => String(a).toLowerCase());
  const self = String(cfg.from || '').toLowerCase();
  if (!mail.from || addressOf(self) === mail.from) return;
  if (allow.length && !allow.includes(mail.from) && !allow.includes('*') && !allow.some((a) => a.startsWith('@') && mail.from.endsWith(a))) {
    cap().log.info('email: sender not in allowFrom; ignored', { uid });
    return;
  }
  if (mail.autoSubmitted) {
    cap().log.info('email: auto-submitted mail ignored', { uid });
    return;
  }
  const threadId = mail.threadRoot || `<uid-${uid}@imap>`;
  await cap().kv.set('thread:' + threadId, { subject: mail.subject, references: [...mail.references, mail.messageId].filter(Boolean).slice(-20) });
  const inbound = {
    channel: 'email',
    chatId: mail.from,
    chatType: 'direct',
    threadId,
    sender: { id: mail.from, username: mail.from },
    text: mail.subject && !mail.inReplyTo ? `${mail.subject}\n\n${mail.text}`.trim() : mail.text,
    platformMessageId: mail.messageId || `uid:${uid}`,
    ts: Number.isFinite(mail.date) ? mail.date : Date.now(),
  };
  if (mail.fromName) inbound.sender.name = mail.fromName;
  if (cfg.account) inbound.account = String(cfg.account);
  if (mail.inReplyTo) inbound.replyTo = mail.inReplyTo;
  await cap().bus.publish('channel.inbound', inbound);
}

async function imapSession(myGen) {
  const conn = await imapOpen();
  imap = conn;
  const caps = (await conn.cmd('CAPABILITY')).map((u) => u.line).join(' ').toUpperCase();
  await conn.cmd(`LOGIN ${quote(cfg.imap.user)} "{{secret:IMAP_PASSWORD}}"`);
  let uidValidity = null;
  let uidNext = null;
  await conn.cmd('SELECT INBOX', (line) => {
    let m = /UIDVALIDITY (\d+)/i.exec(line);
    if (m) uidValidity = Number(m[1]);
    m = /UIDNEXT (\d+)/i.exec(line);
    if (m) uidNext = Number(m[1]);
  });
  const saved = (await cap().kv.get('imap')) || {};
  // First contact with a mailbox (or a rebuilt one): start at what arrives from now on,
  // unless `backfill` asks for the existing mail; an agent should not answer a whole archive.
  const fresh = saved.uidValidity !== uidValidity;
  const state = { uidValidity, lastUid: fresh ? (cfg.backfill ? 0 : Math.max(0, (uidNext ?? 1) - 1)) : Number(saved.lastUid || 0) };
  if (fresh) {
    if (saved.uidValidity !== undefined) cap().log.warn('email: UIDVALIDITY changed; starting from the current end of the inbox');
    await cap().kv.set('imap', { uidValidity, lastUid: state.lastUid });
  }
  backoff = Number(cfg.retryBaseMs ?? 1000);
  cap().log.info('email: imap ready', { idle: caps.includes('IDLE') });
  const idle = caps.includes('IDLE') && cfg.imap.idle !== false;
  const pollMs = Number(cfg.imap.pollIntervalMs ?? 60_000);
  while (running && myGen === gen) {
    await fetchNew(conn, state);
    if (!running || myGen !== gen) break;
    if (idle) {
      // IDLE until the server reports new mail, re-issued every 25 min (RFC 2177's 29-minute limit).
      const t = conn.nextTag();
      await conn.s.write(`${t} IDLE\r\n`);
      const cont = await conn.s.line();
      if (!cont.startsWith('+')) throw new Error(`imap: IDLE refused: ${cont.slice(0, 80)}`);
      let done = false;
      const timer = await cap().timers.interval(Math.min(Number(cfg.imap.idleRestartMs ?? 25 * 60_000), 25 * 60_000), async () => {
        if (!done) await conn.s.write('DONE\r\n').catch(() => {});
        done = true;
      });
      try {
        for (;;) {
          const line = await conn.s.line();
          if (line.startsWith(t + ' ')) break;
          if (/^\* \d+ (EXISTS|RECENT)/i.test(line) && !done) {
            done = true;
            await conn.s.write('DONE\r\n');
          }
          if (!running || myGen !== gen) {
            if (!done) await conn.s.write('DONE\r\n').catch(() => {});
            done = true;
          }
        }
      } finally {
        await timer.cancel().catch(() => {});
      }
    } else {
      await cap().timers.sleep(pollMs);
      await conn.cmd('NOOP');
    }
  }
  await conn.cmd('LOGOUT').catch(() => {});
  await conn.s.close().catch(() => {});
}

async function imapLoop(myGen) {
  while (running && myGen === gen) {
    try {
      await imapSession(myGen);
    } catch (e) {
      if (!running || myGen !== gen) return;
      const wait = backoff;
      backoff = Math.min(backoff * 2, 300_000);
      cap().log.warn('email: imap connection failed; retrying', { error: e.message, retryInMs: wait });
      await cap().timers.sleep(wait);
    }
  }
}

// ------------------------------------------------------------------ SMTP

async function smtpReply(s) {
  let line;
  const lines = [];
  do {
    line = await s.line();
    lines.push(line);
  } while (/^\d{3}-/.test(line));
  return { code: Number(line.slice(0, 3)), text: lines.map((l) => l.slice(4)).join(' ') };
}

function smtpFail(stage, r) {
  const transient = r.code >= 400 && r.code < 500;
  return channelError(`email: smtp ${stage} refused: ${r.code} ${r.text.slice(0, 160)}`, transient, transient ? 60_000 : undefined);
}

/** Stable 16-hex-digit digest (two FNV-1a lanes) for Message-IDs. */
function digest(s) {
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  for (let i = 0; i < s.length; i++) {
    a = Math.imul(a ^ s.charCodeAt(i), 0x01000193) >>> 0;
    b = Math.imul(b ^ s.charCodeAt(i), 0x5bd1e995) >>> 0;
  }
  return a.toString(16).padStart(8, '0') + b.toString(16).padStart(8, '0');
}

function encodeHeader(v) {
  return /^[\x20-\x7e]*$/.test(v) ? v : `=?UTF-8?B?${b64encode(utf8Encode(v))}?=`;
}

function compose(out, messageId, thread) {
  const subject = thread && thread.subject ? (/^re:/i.test(thread.subject) ? thread.subject : `Re: ${thread.subject}`) : String(cfg.subject || 'Message from your agent');
  const headers = [
    `From: ${cfg.fromName ? `${encodeHeader(String(cfg.fromName))} <${cfg.from}>` : cfg.from}`,
    `To: <${out.chatId}>`,
    `Subject: ${encodeHeader(subject)}`,
    `Date: ${new Date().toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: ${messageId}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: base64',
    'Auto-Submitted: auto-replied',
  ];
  const parent = out.replyTo || (thread && thread.references && thread.references[thread.references.length - 1]);
  if (parent) {
    const refs = [...((thread && thread.references) || [])];
    if (!refs.includes(parent)) refs.push(parent);
    headers.push(`In-Reply-To: ${parent}`, `References: ${refs.join(' ')}`);
  }
  const body = b64encode(utf8Encode(out.text ?? '')).replace(/.{76}/g, '$&\r\n');
  return headers.join('\r\n') + '\r\n\r\n' + body + '\r\n';
}

/**
 * The kernel substitutes `{{secret:NAME}}` in our socket writes. Subject and
 * Message-IDs come from whoever wrote the mail: a zero-width space breaks any
 * placeholder planted there (the base64 body cannot carry one).
 */
function defang(text) {
  return text.replace(/\{\{(\s*secret:)/gi, '{{\u200B$1');
}

async function smtpSend(out, messageId, thread) {
  const sc = cfg.smtp;
  const mode = sc.tls === 'starttls' ? 'starttls' : sc.tls === false ? 'plain' : 'tls';
  let sock;
  try {
    sock = await cap().net.connect(String(sc.host), Number(sc.port ?? { plain: 25, starttls: 587, tls: 465 }[mode]), { tls: mode === 'tls' });
  } catch (e) {
    throw channelError(`email: smtp connect failed: ${e.message}`, true, 30_000);
  }
  const s = streamOf(sock);
  try {
    const step = async (line, okCodes, stage) => {
      if (line !== null) await s.write(line + '\r\n');
      const r = await smtpReply(s);
      if (!okCodes.includes(r.code)) throw smtpFail(stage, r);
      return r;
    };
    await step(null, [220], 'greeting');
    const hello = `EHLO ${String(sc.helo || 'carapace.local')}`;
    let ehlo = await step(hello, [250], 'EHLO');
    if (mode === 'starttls') {
      if (!/\bSTARTTLS\b/i.test(ehlo.text)) throw channelError('email: smtp server does not offer STARTTLS; not sending in clear text', false);
      await step('STARTTLS', [220], 'STARTTLS');
      // Anything after the go-ahead came in clear text, possibly injected by a man in the middle.
      if (s.pending()) throw channelError('email: smtp server sent data after its STARTTLS go-ahead; refusing', false);
      await sock.startTls();
      if (s.pending()) throw channelError('email: smtp server sent data after its STARTTLS go-ahead; refusing', false);
      ehlo = await step(hello, [250], 'EHLO after STARTTLS'); // RFC 3207: forget what was said in clear text
    }
    if (sc.auth) {
      if (!/AUTH[ =][^\n]*PLAIN/i.test(ehlo.text)) throw channelError('email: smtp server offers no AUTH PLAIN', false);
      await step('AUTH PLAIN {{secret:SMTP_AUTH_PLAIN}}', [235], 'AUTH');
    }
    await step(`MAIL FROM:<${cfg.from}>`, [250], 'MAIL FROM');
    await step(`RCPT TO:<${out.chatId}>`, [250, 251], 'RCPT TO');
    await step('DATA', [354], 'DATA');
    const data = defang(compose(out, messageId, thread)).replace(/\r\n\./g, '\r\n..');
    await step(data + '.', [250], 'message');
    await s.write('QUIT\r\n').catch(() => {});
  } catch (e) {
    if (e.retryable === undefined) throw channelError(`email: smtp failed: ${e.message}`, true, 30_000);
    throw e;
  } finally {
    s.close().catch(() => {});
  }
}

async function send(out) {
  const key = 'sent:' + out.idempotencyKey;
  const prior = await cap().kv.get(key);
  if (prior && prior.id) return { platformMessageId: prior.id };
  if (!/^[^\s<>@{}]+@[^\s<>@{}]+$/.test(String(out.chatId))) throw channelError(`email: not an address: ${JSON.stringify(out.chatId)}`, false);
  if (!out.text) throw channelError('email: nothing to send', false);
  const domain = String(cfg.from).split('@')[1] || 'carapace.local';
  const messageId = `<${digest(out.idempotencyKey)}.${digest(out.chatId + out.idempotencyKey)}@${domain}>`;
  const thread = out.threadId ? await cap().kv.get('thread:' + out.threadId) : null;
  await smtpSend(out, messageId, thread);
  if (out.threadId) {
    const t = thread || { subject: '', references: [out.threadId] };
    await cap().kv.set('thread:' + out.threadId, { subject: t.subject, references: [...(t.references || []), messageId].slice(-20) });
  }
  await cap().kv.set(key, { id: messageId, at: Date.now() });
  return { platformMessageId: messageId };
}

// ------------------------------------------------------------------ hooks

async function start(ctx) {
  cfg = (ctx && ctx.config) || cap().config || {};
  if (!cfg.from || !cfg.smtp || !cfg.imap) throw new Error('email: config needs from, imap and smtp');
  backoff = Number(cfg.retryBaseMs ?? 1000);
  const now = Date.now();
  for (const row of await cap().kv.list('sent:')) if (!row.value || now - row.value.at > SENT_TTL_MS) await cap().kv.delete(row.key);
  running = true;
  const myGen = ++gen;
  void imapLoop(myGen);
}

async function stop() {
  running = false;
  gen++;
  const c = imap;
  imap = null;
  if (c) await c.s.close().catch(() => {});
}

export { start, send, stop, parseMail, htmlToText, b64decode, b64encode, utf8Decode, utf8Encode };
