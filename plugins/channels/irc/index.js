// IRC channel (isolate runtime) over `carapace.net.connect(host, port, {tls})` as a
// line stream. Registers (PASS, SASL PLAIN, NICK/USER), takes an alternate nick on
// 433, joins its channels, answers PING, notices a dead link by its own PINGs, and
// reconnects with exponential backoff. Outbound PRIVMSGs pass a token bucket so
// the server never kills us for flooding, and are split to fit IRC's 512-byte line.
// Secrets never reach this code: PASS writes `{{secret:IRC_PASSWORD}}` and SASL
// writes `{{secret:IRC_SASL_PLAIN}}` (base64 of "authzid\0authcid\0password": an
// isolate cannot base64 a value it never sees); the kernel substitutes both in
// socket writes to the configured server only.
// IRC keeps no history: what is said while the link is down is gone, which the
// README says plainly. A send while disconnected throws `retryable`. IRC has no
// acks either: a PRIVMSG written just before the link dies may never have been
// read, so each send ends with a PING and resolves only on its PONG (the server
// handles a client's lines in order); a link lost before that throws `retryable`
// and the delivery queue sends again after the reconnect.

const TOKEN_PASS = '{{secret:IRC_PASSWORD}}';
const TOKEN_SASL = '{{secret:IRC_SASL_PLAIN}}';
const MAX_LINE = 512;
const SENT_TTL_MS = 24 * 3600 * 1000;

let cfg = {};
let running = false;
let gen = 0;
let sock = null;
let registered = false;
let nick = '';
let nickTries = 0;
let userName = 'carapace';
let lastRx = 0;
let pinger = null;
let backoff = 1000;
let bucket = { tokens: 0, at: 0 };
let sendChain = Promise.resolve();
let counter = 0;
/** PING token → the send waiting for its PONG, bound to the socket it was written on. */
const confirmations = new Map();

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

// ------------------------------------------------------------------ wire

/** RFC 1459 / IRCv3 line: `@tags :prefix COMMAND params :trailing`. */
function parseLine(line) {
  let rest = line;
  const msg = { tags: {}, prefix: null, command: '', params: [] };
  if (rest.startsWith('@')) {
    const sp = rest.indexOf(' ');
    for (const kv of rest.slice(1, sp).split(';')) {
      const eq = kv.indexOf('=');
      if (eq < 0) msg.tags[kv] = true;
      else msg.tags[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    rest = rest.slice(sp + 1).trimStart();
  }
  if (rest.startsWith(':')) {
    const sp = rest.indexOf(' ');
    msg.prefix = rest.slice(1, sp);
    rest = rest.slice(sp + 1).trimStart();
  }
  while (rest.length) {
    if (rest.startsWith(':')) {
      msg.params.push(rest.slice(1));
      break;
    }
    const sp = rest.indexOf(' ');
    if (sp < 0) {
      msg.params.push(rest);
      break;
    }
    msg.params.push(rest.slice(0, sp));
    rest = rest.slice(sp + 1).trimStart();
  }
  msg.command = (msg.params.shift() || '').toUpperCase();
  return msg;
}

function parsePrefix(prefix) {
  const m = /^([^!@]+)(?:!([^@]+))?(?:@(.+))?$/.exec(prefix || '');
  return m ? { nick: m[1], user: m[2] || '', host: m[3] || '' } : { nick: prefix || '', user: '', host: '' };
}

function utf8Len(s) {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/**
 * Split text into IRC message bodies of at most `maxBytes` UTF-8 bytes each: one
 * per line, long lines broken at the last space that fits (or mid-word when a word
 * alone is too long), never inside a code point.
 */
function splitMessage(text, maxBytes) {
  const out = [];
  for (const rawLine of String(text).replace(/\r/g, '').split('\n')) {
    let line = rawLine;
    if (!line.length) continue;
    while (utf8Len(line) > maxBytes) {
      let bytes = 0;
      let cut = 0;
      let lastSpace = -1;
      while (cut < line.length) {
        const c = line.charCodeAt(cut);
        const w = c < 0x80 ? 1 : c < 0x800 ? 2 : c >= 0xd800 && c <= 0xdbff ? 4 : 3;
        const units = w === 4 ? 2 : 1;
        if (bytes + w > maxBytes) break;
        if (line[cut] === ' ') lastSpace = cut;
        bytes += w;
        cut += units;
      }
      const at = lastSpace > 0 ? lastSpace : cut;
      out.push(line.slice(0, at));
      line = line.slice(lastSpace > 0 ? at + 1 : at);
    }
    if (line.length) out.push(line);
  }
  return out;
}

async function raw(line) {
  const s = sock;
  if (!s) throw channelError('irc: not connected', true, 5000);
  await s.write(line.replace(/[\r\n]/g, ' ') + '\r\n');
}

// ------------------------------------------------------------------ inbound

function isChannel(target) {
  return /^[#&+!]/.test(target);
}

function lower(s) {
  // RFC 1459 casemapping: {}|^ are the lower-case forms of []\~
  return s.toLowerCase().replace(/\[/g, '{').replace(/\]/g, '}').replace(/\\/g, '|').replace(/~/g, '^');
}

function escapeRe(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** `{text, mentioned}` for a channel line: `nick: text` / `nick, text` is stripped; the nick anywhere as a word counts. */
function mentionOf(text, me) {
  const lead = new RegExp(`^\\s*${escapeRe(me)}[:,]\\s*`, 'i');
  if (lead.test(text)) return { text: text.replace(lead, ''), mentioned: true };
  const word = new RegExp(`(^|[^A-Za-z0-9_\\-\\[\\]\\\\^{}|\`])${escapeRe(me)}($|[^A-Za-z0-9_\\-\\[\\]\\\\^{}|\`])`, 'i');
  return { text, mentioned: word.test(text) };
}

async function onPrivmsg(msg) {
  const from = parsePrefix(msg.prefix);
  const target = msg.params[0] || '';
  let text = msg.params[1] || '';
  if (!from.nick || lower(from.nick) === lower(nick)) return;
  if (text.startsWith('\x01')) {
    const m = /^\x01ACTION (.*)\x01?$/.exec(text);
    if (!m) return; // other CTCP (VERSION, PING...) is not conversation
    text = `* ${from.nick} ${m[1]}`;
  }
  const direct = !isChannel(target);
  const inbound = {
    channel: 'irc',
    chatId: direct ? from.nick : target,
    chatType: direct ? 'direct' : 'group',
    sender: { id: from.nick, name: from.nick },
    text,
    platformMessageId: typeof msg.tags.msgid === 'string' ? msg.tags.msgid : `${cfg.host}:${Date.now()}:${++counter}`,
    ts: Date.now(),
  };
  if (from.user || from.host) inbound.sender.username = `${from.user}@${from.host}`;
  if (cfg.account || cfg.host) inbound.account = String(cfg.account || cfg.host);
  if (!direct) {
    const m = mentionOf(text, nick);
    inbound.text = m.text;
    inbound.mentioned = m.mentioned;
  }
  await cap().bus.publish('channel.inbound', inbound);
}

function nextNick() {
  nickTries++;
  const alts = Array.isArray(cfg.altNicks) ? cfg.altNicks : [];
  if (nickTries <= alts.length) return String(alts[nickTries - 1]);
  const base = String(cfg.nick);
  if (nickTries - alts.length <= 2) return base + '_'.repeat(nickTries - alts.length);
  return base.slice(0, 20) + Math.floor(Math.random() * 10000);
}

async function onLine(line) {
  lastRx = Date.now();
  if (!line) return;
  const msg = parseLine(line);
  switch (msg.command) {
    case 'PING':
      return raw(`PONG :${msg.params[msg.params.length - 1] ?? ''}`);
    case 'PONG': {
      const waiter = confirmations.get(msg.params[msg.params.length - 1] ?? '');
      if (waiter) waiter.resolve();
      return;
    }
    case 'CAP': {
      const sub = (msg.params[1] || '').toUpperCase();
      const list = msg.params[msg.params.length - 1] || '';
      if (sub === 'LS') {
        if (cfg.sasl && /(^|\s)sasl(=|\s|$)/.test(list)) return raw('CAP REQ :sasl');
        if (cfg.sasl) cap().log.warn('irc: server offers no SASL; continuing without it');
        return raw('CAP END');
      }
      if (sub === 'ACK' && /(^|\s)sasl(\s|$)/.test(list)) return raw('AUTHENTICATE PLAIN');
      if (sub === 'NAK') return raw('CAP END');
      return;
    }
    case 'AUTHENTICATE':
      if (msg.params[0] === '+') return raw(`AUTHENTICATE ${TOKEN_SASL}`);
      return;
    case '903':
      return raw('CAP END');
    case '902':
    case '904':
    case '905':
    case '906':
      cap().log.error('irc: SASL authentication failed', { code: msg.command });
      return raw('CAP END');
    case '001':
      registered = true;
      nick = msg.params[0] || nick;
      backoff = Number(cfg.retryBaseMs ?? 1000);
      for (const ch of Array.isArray(cfg.channels) ? cfg.channels : []) await raw(`JOIN ${ch}`);
      cap().log.info('irc: registered', { nick });
      return;
    case '432':
    case '433':
    case '436':
      if (!registered) {
        nick = nextNick();
        return raw(`NICK ${nick}`);
      }
      return;
    case 'NICK': {
      const from = parsePrefix(msg.prefix);
      if (lower(from.nick) === lower(nick)) nick = msg.params[0];
      return;
    }
    case 'KICK':
      if (lower(msg.params[1] || '') === lower(nick) && running) {
        await cap().timers.sleep(5000);
        return raw(`JOIN ${msg.params[0]}`).catch(() => {});
      }
      return;
    case 'PRIVMSG':
      return onPrivmsg(msg);
    case 'ERROR':
      cap().log.warn('irc: server closed the link', { reason: msg.params[0] });
      return;
  }
}

// ------------------------------------------------------------------ connection

async function connect(myGen) {
  const s = await cap().net.connect(String(cfg.host), Number(cfg.port ?? (cfg.tls ? 6697 : 6667)), { tls: Boolean(cfg.tls) });
  if (myGen !== gen || !running) {
    s.close().catch(() => {});
    return;
  }
  sock = s;
  registered = false;
  nickTries = 0;
  nick = String(cfg.nick);
  lastRx = Date.now();
  let buf = '';
  let chain = Promise.resolve();
  s.onData((data) => {
    buf += data;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i).replace(/\r$/, '');
      buf = buf.slice(i + 1);
      chain = chain.then(() => onLine(line)).catch((e) => cap().log.warn('irc: line handling failed', { error: e.message }));
    }
  });
  s.onClose((info) => {
    // After the lines already read: a PONG just before the close still confirms its send.
    chain = chain.then(() => {
      for (const w of confirmations.values()) if (w.sock === s) w.reject(channelError('irc: link lost before the server confirmed the message', true, 1000));
    });
    if (sock !== s) return;
    sock = null;
    registered = false;
    chain = chain.then(() => {
      if (!running || myGen !== gen) return;
      cap().log.warn('irc: connection lost; reconnecting', { error: info && info.error });
      return reconnect(myGen);
    });
  });
  if (cfg.sasl) await raw('CAP LS 302');
  if (cfg.password) await raw(`PASS ${TOKEN_PASS}`);
  await raw(`NICK ${nick}`);
  await raw(`USER ${userName} 0 * :${String(cfg.realname ?? 'Carapace agent')}`);
}

async function reconnect(myGen) {
  while (running && myGen === gen) {
    const wait = backoff;
    backoff = Math.min(backoff * 2, 300_000);
    await cap().timers.sleep(wait);
    if (!running || myGen !== gen) return;
    try {
      await connect(myGen);
      return;
    } catch (e) {
      cap().log.warn('irc: connect failed', { error: e.message, retryInMs: backoff });
    }
  }
}

// ------------------------------------------------------------------ outbound

/** Wait for a token: `floodBurst` lines at once, then one per `floodIntervalMs`. */
async function takeToken() {
  const burst = Number(cfg.floodBurst ?? 4);
  const every = Number(cfg.floodIntervalMs ?? 2000);
  for (;;) {
    const now = Date.now();
    bucket.tokens = Math.min(burst, bucket.tokens + (now - bucket.at) / every);
    bucket.at = now;
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return;
    }
    await cap().timers.sleep(Math.ceil((1 - bucket.tokens) * every));
  }
}

function bodyBudget(target) {
  // What the server prepends when relaying: ":nick!~user@host PRIVMSG target :" + CRLF.
  const prefix = 1 + utf8Len(nick) + 2 + utf8Len(userName) + 1 + Number(cfg.hostBudget ?? 63);
  return MAX_LINE - 2 - prefix - utf8Len(` PRIVMSG ${target} :`);
}

/** Writes `line` and a PING on socket `s`; resolves when the server answers the PING; rejects (retryable) if `s` closes first. */
async function confirmed(s, line) {
  const token = `cp${Date.now()}-${++counter}`;
  let settle;
  const done = new Promise((resolve, reject) => (settle = { resolve, reject }));
  confirmations.set(token, { sock: s, resolve: () => settle.resolve(), reject: (e) => settle.reject(e) });
  try {
    // No timer of its own: a server that stops answering is dropped by the silent-link
    // check (pingIntervalMs), and the close rejects this wait.
    // One write with the last line, so the server reads both in the same pass.
    await s.write(`${line}\r\nPING :${token}\r\n`);
    await done;
  } finally {
    confirmations.delete(token);
  }
}

async function send(out) {
  const key = 'sent:' + out.idempotencyKey;
  const prior = await cap().kv.get(key);
  if (prior && prior.id) return { platformMessageId: prior.id };
  const refs = (Array.isArray(out.media) ? out.media : []).map((m) => m.ref).filter(Boolean);
  const text = [out.text ?? '', ...refs].filter(Boolean).join('\n');
  if (!text) throw channelError('irc: nothing to send', false);
  const target = String(out.chatId);
  if (!/^[^\s,\x00\x07]+$/.test(target)) throw channelError(`irc: invalid target ${JSON.stringify(target)}`, false);
  if (!sock || !registered) throw channelError('irc: not connected', true, 5000);
  const lines = splitMessage(text, bodyBudget(target));
  const run = sendChain.then(async () => {
    const s = sock;
    if (!s || !registered) throw channelError('irc: not connected', true, 5000);
    for (let i = 0; i < lines.length; i++) {
      await takeToken();
      if (sock !== s) throw channelError('irc: link lost while sending', true, 1000);
      const line = `PRIVMSG ${target} :${lines[i].replace(/[\r\n]/g, ' ')}`;
      if (i < lines.length - 1) await raw(line);
      else await confirmed(s, line);
    }
  });
  sendChain = run.catch(() => {});
  await run;
  const id = `${cfg.host}:out:${Date.now()}:${++counter}`;
  await cap().kv.set(key, { id, at: Date.now() });
  return { platformMessageId: id };
}

// ------------------------------------------------------------------ hooks

async function start(ctx) {
  cfg = (ctx && ctx.config) || cap().config || {};
  if (!cfg.host || !cfg.nick) throw new Error('irc: config needs host and nick');
  userName = String(cfg.username ?? 'carapace');
  backoff = Number(cfg.retryBaseMs ?? 1000);
  bucket = { tokens: Number(cfg.floodBurst ?? 4), at: Date.now() };
  const now = Date.now();
  for (const row of await cap().kv.list('sent:')) if (!row.value || now - row.value.at > SENT_TTL_MS) await cap().kv.delete(row.key);
  running = true;
  const myGen = ++gen;
  const pingEvery = Number(cfg.pingIntervalMs ?? 90_000);
  pinger = await cap().timers.interval(pingEvery, async () => {
    if (!sock || myGen !== gen) return;
    if (Date.now() - lastRx > pingEvery * 2) {
      cap().log.warn('irc: link silent; dropping it');
      const s = sock;
      await s.close().catch(() => {});
      return;
    }
    await raw(`PING :${Date.now()}`).catch(() => {});
  });
  try {
    await connect(myGen);
  } catch (e) {
    cap().log.warn('irc: connect failed', { error: e.message });
    void reconnect(myGen);
  }
}

async function stop() {
  running = false;
  gen++;
  const p = pinger;
  pinger = null;
  if (p) await p.cancel().catch(() => {});
  const s = sock;
  sock = null;
  if (s) {
    await s.write('QUIT :bye\r\n').catch(() => {});
    await s.close().catch(() => {});
  }
}

export { start, send, stop, parseLine, splitMessage, utf8Len, mentionOf };
