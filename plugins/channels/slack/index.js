// Slack channel (isolate runtime), Socket Mode: no public URL needed.
// `apps.connections.open` (app-level token, `{{secret:SLACK_APP_TOKEN}}`) returns a
// one-time wss URL; events arrive there as envelopes that must be acknowledged
// with their `envelope_id`. An envelope is acknowledged only after its message was
// published, so Slack redelivers whatever a dropped connection swallowed; repeats
// (redeliveries, and the `message` + `app_mention` pair Slack sends for one
// mention) are dropped by `channel:ts`. `disconnect` (refresh/warning) opens the
// next connection before the old one closes.
// Outbound: Web API `chat.postMessage` with the bot token (`{{secret:SLACK_BOT_TOKEN}}`),
// `thread_ts` for threads; HTTP 429 `Retry-After` surfaces as retryable.

const DEFAULT_API = 'https://slack.com/api';
const APP_TOKEN = '{{secret:SLACK_APP_TOKEN}}';
const BOT_TOKEN = '{{secret:SLACK_BOT_TOKEN}}';
const RETRYABLE_ERRORS = new Set(['ratelimited', 'internal_error', 'fatal_error', 'service_unavailable', 'request_timeout']);
const SENT_TTL_MS = 24 * 3600 * 1000;
const SEEN_MAX = 2000;

let cfg = {};
let api = DEFAULT_API;
let running = false;
let gen = 0;
let sock = null;
let botUserId = null;
let seen = new Set();
let backoff = 1000;

function cap() {
  return globalThis.carapace;
}

function channelError(message, retryable, retryAfterMs, status) {
  const err = new Error(message);
  err.name = 'ChannelSendError';
  err.retryable = retryable;
  if (retryAfterMs !== undefined) err.retryAfterMs = retryAfterMs;
  if (status !== undefined) err.status = status;
  return err;
}

async function web(method, token, body) {
  let res;
  try {
    res = await cap().net.fetch(`${api}/${method}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json; charset=utf-8' },
      body: JSON.stringify(body ?? {}),
      timeoutMs: 30_000,
    });
  } catch (e) {
    throw channelError(`slack ${method}: network error: ${e && e.message}`, true);
  }
  if (res.status === 429) {
    const secs = Number(res.headers['retry-after']);
    throw channelError(`slack ${method}: 429 rate limited`, true, (Number.isFinite(secs) && secs > 0 ? secs : 1) * 1000, 429);
  }
  if (res.status >= 500) throw channelError(`slack ${method}: ${res.status}`, true, undefined, res.status);
  let json = null;
  try {
    json = JSON.parse(res.body);
  } catch {
    json = null;
  }
  if (!json) throw channelError(`slack ${method}: ${res.status} non-JSON answer`, res.status >= 500, undefined, res.status);
  if (json.ok) return json;
  const error = String(json.error || 'unknown_error');
  throw channelError(`slack ${method}: ${error}`, RETRYABLE_ERRORS.has(error), undefined, res.status);
}

// ------------------------------------------------------------------ inbound

const KEEP_SUBTYPES = new Set([undefined, 'file_share', 'thread_broadcast']);

function stripMentions(text) {
  if (!botUserId) return text;
  return text.split(`<@${botUserId}>`).join('').replace(/\s{2,}/g, ' ').trim();
}

function decode(text) {
  return text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

/** A Slack `message` / `app_mention` event as an InboundMessage, or null for what we ignore. */
function toInbound(ev) {
  if (!ev || (ev.type !== 'message' && ev.type !== 'app_mention')) return null;
  if (!KEEP_SUBTYPES.has(ev.subtype) || ev.bot_id || !ev.user || ev.user === botUserId) return null;
  const raw = ev.text ?? '';
  const media = (ev.files ?? []).map((f) => {
    const mime = f.mimetype || '';
    const kind = mime.startsWith('image/') ? 'image' : mime.startsWith('audio/') ? 'audio' : mime.startsWith('video/') ? 'video' : 'file';
    const m = { kind, ref: f.url_private || f.permalink || f.id };
    if (mime) m.mime = mime;
    if (f.name) m.name = f.name;
    return m;
  });
  const text = decode(stripMentions(raw));
  if (!text && !media.length) return null;
  const direct = ev.channel_type === 'im';
  const inThread = ev.thread_ts && ev.thread_ts !== ev.ts;
  const inbound = {
    channel: 'slack',
    chatId: String(ev.channel),
    chatType: direct ? 'direct' : inThread ? 'thread' : 'group',
    sender: { id: String(ev.user) },
    text,
    platformMessageId: `${ev.channel}:${ev.ts}`,
    ts: Math.round(Number(ev.ts) * 1000),
  };
  if (cfg.account || ev.team) inbound.account = String(cfg.account || ev.team);
  if (inThread) inbound.threadId = String(ev.thread_ts);
  if (!direct) inbound.mentioned = ev.type === 'app_mention' || (botUserId !== null && raw.includes(`<@${botUserId}>`));
  if (media.length) inbound.media = media;
  return inbound;
}

async function onEnvelope(env, s) {
  if (env.type === 'hello') {
    backoff = Number(cfg.retryBaseMs ?? 1000);
    return;
  }
  if (env.type === 'disconnect') {
    cap().log.info('slack: server asked to reconnect', { reason: env.reason });
    if (env.reason === 'link_disabled') {
      running = false;
      cap().log.error('slack: Socket Mode is disabled for this app; not reconnecting');
      return;
    }
    const myGen = gen;
    await reconnect(myGen); // the new connection first, then drop the old one
    s.close().catch(() => {});
    return;
  }
  if (env.type === 'events_api' && env.payload) {
    const ev = env.payload.event;
    const inbound = toInbound(ev);
    if (inbound && !seen.has(inbound.platformMessageId)) {
      await cap().bus.publish('channel.inbound', inbound);
      seen.add(inbound.platformMessageId);
      if (seen.size > SEEN_MAX) seen = new Set([...seen].slice(-SEEN_MAX / 2));
    }
  }
  if (env.envelope_id) await s.write(JSON.stringify({ envelope_id: env.envelope_id }));
}

async function connect(myGen) {
  const opened = await web('apps.connections.open', APP_TOKEN);
  const s = await cap().net.websocket(String(opened.url));
  if (myGen !== gen || !running) {
    s.close().catch(() => {});
    return;
  }
  const prev = sock;
  sock = s;
  let chain = Promise.resolve();
  s.onData((text) => {
    let env;
    try {
      env = JSON.parse(text);
    } catch {
      return;
    }
    chain = chain.then(() => onEnvelope(env, s)).catch((e) => cap().log.error('slack: envelope handling failed', { error: e.message }));
  });
  s.onClose(() => {
    if (sock !== s) return; // an old connection we replaced
    sock = null;
    chain = chain.then(() => (running && myGen === gen ? reconnect(myGen) : undefined));
  });
  if (prev && prev !== s) prev.close().catch(() => {});
}

async function reconnect(myGen) {
  while (running && myGen === gen) {
    try {
      await connect(myGen);
      return;
    } catch (e) {
      const wait = e.retryAfterMs ?? backoff;
      backoff = Math.min(backoff * 2, 60_000);
      cap().log.warn('slack: socket mode connect failed', { error: e.message, retryInMs: wait });
      await cap().timers.sleep(wait);
    }
  }
}

// ------------------------------------------------------------------ outbound

function tsOf(ref) {
  return String(ref).split(':').pop();
}

async function send(out) {
  const key = 'sent:' + out.idempotencyKey;
  const prior = await cap().kv.get(key);
  if (prior && prior.id) return { platformMessageId: prior.id };
  const refs = (Array.isArray(out.media) ? out.media : []).map((m) => m.ref).filter(Boolean);
  const text = [out.text ?? '', ...refs].filter(Boolean).join('\n');
  if (!text) throw channelError('slack: nothing to send (empty text and no media)', false);
  const body = { channel: out.chatId, text, unfurl_links: refs.length > 0 };
  const thread = out.threadId || (out.replyTo ? tsOf(out.replyTo) : null);
  if (thread) body.thread_ts = String(thread);
  const r = await web('chat.postMessage', BOT_TOKEN, body);
  const id = `${r.channel || out.chatId}:${r.ts}`;
  await cap().kv.set(key, { id, at: Date.now() });
  return { platformMessageId: id };
}

// ------------------------------------------------------------------ hooks

async function start(ctx) {
  cfg = (ctx && ctx.config) || cap().config || {};
  api = String(cfg.apiBaseUrl || DEFAULT_API).replace(/\/+$/, '');
  backoff = Number(cfg.retryBaseMs ?? 1000);
  const auth = await web('auth.test', BOT_TOKEN);
  botUserId = auth.user_id || null;
  const now = Date.now();
  for (const row of await cap().kv.list('sent:')) if (!row.value || now - row.value.at > SENT_TTL_MS) await cap().kv.delete(row.key);
  running = true;
  const myGen = ++gen;
  try {
    await connect(myGen);
  } catch (e) {
    cap().log.warn('slack: socket mode connect failed', { error: e.message });
    void reconnect(myGen);
  }
  cap().log.info('slack: started', { botUserId });
}

async function stop() {
  running = false;
  gen++;
  const s = sock;
  sock = null;
  if (s) await s.close().catch(() => {});
}

export { start, send, stop, toInbound };
