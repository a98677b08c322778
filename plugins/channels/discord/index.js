// Discord channel (isolate runtime). Inbound over the Gateway through
// `carapace.net.websocket`; outbound over REST through `carapace.net.fetch`.
// The bot token is only ever the `{{secret:DISCORD_BOT_TOKEN}}` placeholder: in the
// REST Authorization header and in the IDENTIFY/RESUME frames (the kernel
// substitutes it for discord.com and *.discord.gg only).
//
// Gateway: HELLO(10) → heartbeats(1)/ACK(11) → IDENTIFY(2) → READY; dispatches(0)
// carry a sequence number. After a drop, RECONNECT(7), a missed ACK (zombie) or a
// resumable INVALID_SESSION(9), the plugin RESUMEs(6) on resume_gateway_url with
// the last sequence it processed, and Discord replays what was missed. The session
// id and sequence are kept in kv so a plugin restart resumes too. A sequence is
// recorded only after its message was published, and replays at or below it are
// skipped: nothing lost, nothing repeated.

const DEFAULT_API = 'https://discord.com/api/v10';
const TOKEN = '{{secret:DISCORD_BOT_TOKEN}}';
// GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT
const DEFAULT_INTENTS = (1 << 0) | (1 << 9) | (1 << 12) | (1 << 15);
const FATAL_CLOSE = new Set([4004, 4010, 4011, 4012, 4013, 4014]);
const RESET_CLOSE = new Set([4007, 4009]);
const SENT_TTL_MS = 24 * 3600 * 1000;

let cfg = {};
let api = DEFAULT_API;
let running = false;
let gen = 0;
let sock = null;
let heartbeat = null;
let acked = true;
let seq = null;
let sessionId = null;
let resumeUrl = null;
let botId = null;
let gatewayUrl = null;
let queue = Promise.resolve();
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

async function rest(method, path, body) {
  let res;
  try {
    res = await cap().net.fetch(api + path, {
      method,
      headers: { authorization: `Bot ${TOKEN}`, 'content-type': 'application/json', 'user-agent': 'DiscordBot (https://github.com/carapace, 0.1)' },
      body: body === undefined ? undefined : JSON.stringify(body),
      timeoutMs: 30_000,
    });
  } catch (e) {
    throw channelError(`discord ${method} ${path}: network error: ${e && e.message}`, true);
  }
  let json = null;
  try {
    json = res.body ? JSON.parse(res.body) : null;
  } catch {
    json = null;
  }
  if (res.status >= 200 && res.status < 300) return json;
  if (res.status === 429) {
    const header = Number(res.headers['retry-after']);
    const secs = json && typeof json.retry_after === 'number' ? json.retry_after : Number.isFinite(header) ? header : 1;
    throw channelError(`discord ${method} ${path}: 429 rate limited${json && json.global ? ' (global)' : ''}`, true, Math.ceil(secs * 1000), 429);
  }
  const msg = (json && json.message) || res.statusText || 'error';
  throw channelError(`discord ${method} ${path}: ${res.status} ${msg}`, res.status >= 500, undefined, res.status);
}

// ------------------------------------------------------------------ gateway

async function persist() {
  await cap().kv.set('session', { sessionId, resumeUrl, seq, botId });
}

function write(payload) {
  const s = sock;
  if (!s) return;
  s.write(JSON.stringify(payload)).catch(() => {});
}

function stopHeartbeat() {
  const h = heartbeat;
  heartbeat = null;
  if (h) h.cancel().catch(() => {});
}

async function startHeartbeat(intervalMs, myGen) {
  stopHeartbeat();
  acked = true;
  const h = await cap().timers.interval(intervalMs, () => {
    if (myGen !== gen) return;
    if (!acked) {
      // No ACK since the last beat: a zombie connection. Drop it and resume.
      cap().log.warn('discord: heartbeat not acknowledged; reconnecting');
      dropSocket();
      return;
    }
    acked = false;
    write({ op: 1, d: seq });
  });
  if (myGen !== gen) h.cancel().catch(() => {});
  else heartbeat = h;
}

function dropSocket() {
  const s = sock;
  if (s) s.close(4900).catch(() => {}); // not 1000/1001: those would invalidate the session
}

function identify() {
  write({
    op: 2,
    d: { token: TOKEN, intents: Number(cfg.intents ?? DEFAULT_INTENTS), properties: { os: 'linux', browser: 'carapace', device: 'carapace' } },
  });
}

function stripMentions(text) {
  if (!botId) return text;
  return text.replace(new RegExp(`<@!?${botId}>`, 'g'), '').replace(/\s{2,}/g, ' ').trim();
}

/** A MESSAGE_CREATE payload as an InboundMessage, or null for bots/ourselves/empty. */
function toInbound(d) {
  if (!d || !d.author || d.author.bot || d.author.id === botId || d.webhook_id) return null;
  const media = (d.attachments ?? []).map((a) => {
    const type = a.content_type || '';
    const kind = type.startsWith('image/') ? 'image' : type.startsWith('audio/') ? 'audio' : type.startsWith('video/') ? 'video' : 'file';
    const m = { kind, ref: a.url };
    if (type) m.mime = type;
    if (a.filename) m.name = a.filename;
    return m;
  });
  const isGuild = Boolean(d.guild_id);
  const mentioned =
    (d.mentions ?? []).some((u) => u.id === botId) ||
    Boolean(d.referenced_message && d.referenced_message.author && d.referenced_message.author.id === botId);
  const text = stripMentions(d.content ?? '');
  if (!text && !media.length) return null;
  const inbound = {
    channel: 'discord',
    chatId: String(d.channel_id),
    chatType: isGuild ? 'group' : 'direct',
    sender: { id: String(d.author.id), username: d.author.username },
    text,
    platformMessageId: String(d.id),
    ts: d.timestamp ? Date.parse(d.timestamp) : Date.now(),
  };
  const name = (d.member && d.member.nick) || d.author.global_name;
  if (name) inbound.sender.name = name;
  if (cfg.account) inbound.account = String(cfg.account);
  if (isGuild) inbound.mentioned = mentioned;
  if (media.length) inbound.media = media;
  if (d.message_reference && d.message_reference.message_id) inbound.replyTo = String(d.message_reference.message_id);
  return inbound;
}

async function onPayload(p, myGen) {
  if (myGen !== gen) return;
  switch (p.op) {
    case 10:
      await startHeartbeat(p.d.heartbeat_interval, myGen);
      if (sessionId && seq !== null) write({ op: 6, d: { token: TOKEN, session_id: sessionId, seq } });
      else identify();
      return;
    case 11:
      acked = true;
      return;
    case 1:
      write({ op: 1, d: seq });
      return;
    case 7:
      cap().log.info('discord: gateway asked to reconnect');
      dropSocket();
      return;
    case 9:
      if (!p.d) {
        sessionId = null;
        seq = null;
        await persist();
      }
      cap().log.warn('discord: invalid session', { resumable: Boolean(p.d) });
      await cap().timers.sleep(Number(cfg.invalidSessionDelayMs ?? 1000 + Math.floor(Math.random() * 4000)));
      if (myGen !== gen) return;
      if (p.d && sessionId) write({ op: 6, d: { token: TOKEN, session_id: sessionId, seq } });
      else identify();
      return;
    case 0:
      return onDispatch(p);
  }
}

async function onDispatch(p) {
  if (p.t === 'READY') {
    sessionId = p.d.session_id;
    resumeUrl = p.d.resume_gateway_url || null;
    botId = p.d.user && p.d.user.id;
    seq = p.s;
    backoff = Number(cfg.retryBaseMs ?? 1000);
    await persist();
    cap().log.info('discord: ready', { user: p.d.user && p.d.user.username });
    return;
  }
  if (typeof p.s === 'number' && seq !== null && p.s <= seq) return; // a replay we already handled
  if (p.t === 'RESUMED') backoff = Number(cfg.retryBaseMs ?? 1000);
  if (p.t === 'MESSAGE_CREATE') {
    const inbound = toInbound(p.d);
    if (inbound) await cap().bus.publish('channel.inbound', inbound);
  }
  if (typeof p.s === 'number') {
    seq = p.s;
    await persist();
  }
}

async function connect(myGen) {
  const base = (sessionId && resumeUrl) || gatewayUrl;
  const url = base + (base.includes('?') ? '&' : '?') + 'v=10&encoding=json';
  const s = await cap().net.websocket(url);
  if (myGen !== gen) {
    s.close().catch(() => {});
    return;
  }
  sock = s;
  s.onData((text) => {
    let p;
    try {
      p = JSON.parse(text);
    } catch {
      return;
    }
    queue = queue.then(() => onPayload(p, myGen)).catch((e) => cap().log.error('discord: payload handling failed', { error: e.message }));
  });
  s.onClose((info) => {
    if (sock === s) sock = null;
    queue = queue.then(() => onClosed(info || {}, myGen));
  });
}

async function onClosed(info, myGen) {
  stopHeartbeat();
  if (!running || myGen !== gen) return;
  if (FATAL_CLOSE.has(info.code)) {
    cap().log.error('discord: gateway refused the connection; not reconnecting', { code: info.code, reason: info.reason });
    running = false;
    return;
  }
  if (RESET_CLOSE.has(info.code)) {
    sessionId = null;
    seq = null;
    await persist();
  }
  await reconnect(myGen);
}

async function reconnect(myGen) {
  while (running && myGen === gen) {
    const wait = backoff;
    backoff = Math.min(backoff * 2, 60_000);
    await cap().timers.sleep(wait);
    if (!running || myGen !== gen) return;
    try {
      await connect(myGen);
      return;
    } catch (e) {
      cap().log.warn('discord: gateway connect failed', { error: e.message, retryInMs: backoff });
    }
  }
}

// ------------------------------------------------------------------ outbound

/** Discord nonces are at most 25 chars: a stable FNV-1a digest of the idempotency key. */
function nonceOf(key) {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ c, 0x5bd1e995) >>> 0;
  }
  return 'c' + h1.toString(36) + h2.toString(36);
}

async function send(out) {
  const key = 'sent:' + out.idempotencyKey;
  const prior = await cap().kv.get(key);
  if (prior && prior.id) return { platformMessageId: prior.id };
  const refs = (Array.isArray(out.media) ? out.media : []).map((m) => m.ref).filter(Boolean);
  const content = [out.text ?? '', ...refs].filter(Boolean).join('\n');
  if (!content) throw channelError('discord: nothing to send (empty text and no media)', false);
  const body = { content, nonce: nonceOf(out.idempotencyKey), enforce_nonce: true, allowed_mentions: { parse: ['users'] } };
  if (out.replyTo) body.message_reference = { message_id: String(out.replyTo), fail_if_not_exists: false };
  let msg;
  try {
    msg = await rest('POST', `/channels/${encodeURIComponent(out.threadId || out.chatId)}/messages`, body);
  } catch (e) {
    // A direct message addressed to a user (an approval ask: approvals.chat names the
    // owner, not a channel) goes to the DM channel Discord opens for that user.
    if (e.status !== 404 || out.threadId) throw e;
    msg = await rest('POST', `/channels/${encodeURIComponent(await dmChannelOf(out.chatId))}/messages`, body);
  }
  const id = String(msg && msg.id);
  await cap().kv.set(key, { id, at: Date.now() });
  return { platformMessageId: id };
}

async function dmChannelOf(userId) {
  const key = 'dm:' + userId;
  const known = await cap().kv.get(key);
  if (known) return known;
  const channel = await rest('POST', '/users/@me/channels', { recipient_id: String(userId) });
  if (!channel || !channel.id) throw channelError(`discord: no DM channel for user ${userId}`, false);
  await cap().kv.set(key, String(channel.id));
  return String(channel.id);
}

async function typing(t) {
  await rest('POST', `/channels/${encodeURIComponent(t.threadId || t.chatId)}/typing`);
}

// ------------------------------------------------------------------ hooks

async function start(ctx) {
  cfg = (ctx && ctx.config) || cap().config || {};
  api = String(cfg.apiBaseUrl || DEFAULT_API).replace(/\/+$/, '');
  backoff = Number(cfg.retryBaseMs ?? 1000);
  const saved = (await cap().kv.get('session')) || {};
  sessionId = saved.sessionId || null;
  resumeUrl = saved.resumeUrl || null;
  seq = typeof saved.seq === 'number' ? saved.seq : null;
  botId = saved.botId || null;
  gatewayUrl = cfg.gatewayUrl ? String(cfg.gatewayUrl) : (await rest('GET', '/gateway/bot')).url;
  const now = Date.now();
  for (const row of await cap().kv.list('sent:')) if (!row.value || now - row.value.at > SENT_TTL_MS) await cap().kv.delete(row.key);
  await cap().bus.subscribe('channel.outbound.discord', async (m) => {
    const p = m && m.payload;
    if (p && p.type === 'typing' && p.chatId) await typing(p).catch((e) => cap().log.warn('discord: typing failed', { error: e.message }));
  });
  running = true;
  const myGen = ++gen;
  try {
    await connect(myGen);
  } catch (e) {
    cap().log.warn('discord: gateway connect failed', { error: e.message });
    void reconnect(myGen);
  }
}

async function stop() {
  running = false;
  gen++;
  stopHeartbeat();
  const s = sock;
  sock = null;
  if (s) await s.close(4900).catch(() => {});
}

export { start, send, stop, typing, toInbound };
