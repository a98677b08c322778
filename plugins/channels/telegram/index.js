// Telegram channel (isolate runtime). Reaches Telegram only through the injected
// `carapace` object: Bot API calls go through `carapace.net.fetch` with the token
// as a `{{secret:TELEGRAM_BOT_TOKEN}}` placeholder in the URL, which the kernel
// substitutes for api.telegram.org only; the plugin never holds the token.
//
// Inbound: long polling `getUpdates`. The offset is persisted in kv after each
// update is published, so a restart neither loses updates (Telegram keeps every
// update until a later offset confirms it) nor repeats them (beyond the one update
// in flight at a crash, which the core de-duplicates by platformMessageId).
// Webhook mode: the plugin registers the webhook; the gateway verifies Telegram's
// secret-token header and forwards each raw update on bus topic
// `channel.webhook.telegram` (this plugin cannot listen on a port).
//
// Outbound: `send` delivers one chunk (the core chunks at `chunkLimit`). Failures
// throw `{retryable, retryAfterMs}` so the delivery queue retries 429/5xx/network.
// Typing indicators are ephemeral: `{type:'typing', chatId}` on
// `channel.outbound.telegram`.

const DEFAULT_API = 'https://api.telegram.org';
const TOKEN = '{{secret:TELEGRAM_BOT_TOKEN}}';
const WEBHOOK_SECRET = '{{secret:TELEGRAM_WEBHOOK_SECRET}}';
const SENT_TTL_MS = 24 * 3600 * 1000;
const CAPTION_LIMIT = 1024;

let api = null;
let cfg = {};
let running = false;
let gen = 0;
let me = null;
let offset = 0;
let seenWebhook = new Set();

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

/** One Bot API call; returns `result` or throws a classified error. */
async function call(method, params, timeoutMs) {
  let res;
  try {
    res = await cap().net.fetch(`${api}/bot${TOKEN}/${method}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(params ?? {}),
      // Only setWebhook carries a secret (secret_token) in its body; message bodies never may.
      secretsInBody: method === 'setWebhook',
      timeoutMs: timeoutMs ?? 30_000,
    });
  } catch (e) {
    throw channelError(`telegram ${method}: network error: ${e && e.message}`, true);
  }
  let body = null;
  try {
    body = JSON.parse(res.body);
  } catch {
    body = null;
  }
  if (body && body.ok === true && res.status < 300) return body.result;
  const code = (body && body.error_code) || res.status;
  const desc = (body && body.description) || res.statusText || 'error';
  const retryAfter = body && body.parameters && body.parameters.retry_after;
  if (code === 429) return Promise.reject(channelError(`telegram ${method}: 429 ${desc}`, true, (Number(retryAfter) || 1) * 1000, 429));
  if (code >= 500) return Promise.reject(channelError(`telegram ${method}: ${code} ${desc}`, true, undefined, code));
  return Promise.reject(channelError(`telegram ${method}: ${code} ${desc}`, false, undefined, code));
}

// ------------------------------------------------------------------ inbound

function senderName(u) {
  return [u.first_name, u.last_name].filter(Boolean).join(' ') || u.username || String(u.id);
}

/** Did this group message address the bot: @username / text_mention entity, /cmd@bot, or a reply to the bot? */
function isMention(msg) {
  if (!me) return false;
  const text = msg.text ?? msg.caption ?? '';
  const entities = msg.entities ?? msg.caption_entities ?? [];
  const uname = me.username ? '@' + me.username.toLowerCase() : null;
  for (const e of entities) {
    const slice = text.substr(e.offset, e.length).toLowerCase();
    if (e.type === 'mention' && uname && slice === uname) return true;
    if (e.type === 'text_mention' && e.user && e.user.id === me.id) return true;
    if (e.type === 'bot_command' && uname && slice.endsWith(uname)) return true;
  }
  if (msg.reply_to_message && msg.reply_to_message.from && msg.reply_to_message.from.id === me.id) return true;
  return false;
}

function mediaOf(msg) {
  const out = [];
  if (Array.isArray(msg.photo) && msg.photo.length) {
    const best = msg.photo[msg.photo.length - 1];
    out.push({ kind: 'image', ref: best.file_id, mime: 'image/jpeg' });
  }
  const doc = msg.document;
  if (doc) out.push(withOpt({ kind: doc.mime_type && doc.mime_type.startsWith('image/') ? 'image' : 'file', ref: doc.file_id }, doc.mime_type, doc.file_name));
  for (const [field, kind] of [['audio', 'audio'], ['voice', 'audio'], ['video', 'video'], ['video_note', 'video']]) {
    const m = msg[field];
    if (m) out.push(withOpt({ kind, ref: m.file_id }, m.mime_type, m.file_name));
  }
  return out;
}

function withOpt(o, mime, name) {
  if (mime) o.mime = mime;
  if (name) o.name = name;
  return o;
}

/** A Telegram `message` as the unified InboundMessage, or null for what we ignore. */
function toInbound(msg) {
  if (!msg || !msg.chat || !msg.from) return null;
  if (me && msg.from.id === me.id) return null;
  const media = mediaOf(msg);
  const text = msg.text ?? msg.caption ?? '';
  if (!text && !media.length) return null; // joins, pins, service messages
  const isGroup = msg.chat.type !== 'private';
  const inbound = {
    channel: 'telegram',
    chatId: String(msg.chat.id),
    chatType: !isGroup ? 'direct' : msg.is_topic_message && msg.message_thread_id ? 'thread' : 'group',
    sender: { id: String(msg.from.id), name: senderName(msg.from) },
    text,
    platformMessageId: `${msg.chat.id}:${msg.message_id}`,
    ts: (msg.date || 0) * 1000,
  };
  if (cfg.account) inbound.account = String(cfg.account);
  if (msg.from.username) inbound.sender.username = msg.from.username;
  if (inbound.chatType === 'thread') inbound.threadId = String(msg.message_thread_id);
  if (media.length) inbound.media = media;
  if (isGroup) inbound.mentioned = isMention(msg);
  if (msg.reply_to_message) inbound.replyTo = String(msg.reply_to_message.message_id);
  return inbound;
}

async function handleUpdate(update) {
  const inbound = toInbound(update.message ?? update.channel_post);
  if (inbound) await cap().bus.publish('channel.inbound', inbound);
}

async function pollLoop(myGen) {
  const base = Number(cfg.retryBaseMs ?? 1000);
  let backoff = base;
  const timeoutSec = Number(cfg.pollTimeoutSec ?? 25);
  while (running && gen === myGen) {
    let updates;
    try {
      updates = await call('getUpdates', { offset, timeout: timeoutSec, allowed_updates: ['message', 'channel_post'] }, (timeoutSec + 15) * 1000);
      backoff = base;
    } catch (e) {
      if (!running || gen !== myGen) return;
      if (e.status === 409) {
        // A webhook is set: polling and webhooks are exclusive.
        cap().log.warn('telegram: webhook set while polling; deleting it');
        await call('deleteWebhook', { drop_pending_updates: false }).catch(() => {});
        continue;
      }
      const wait = e.retryAfterMs ?? backoff;
      cap().log.warn('telegram: getUpdates failed', { error: e.message, retryInMs: wait });
      await cap().timers.sleep(wait);
      backoff = Math.min(backoff * 2, 60_000);
      continue;
    }
    if (!running || gen !== myGen) return; // not confirming: these updates come again after a restart
    for (const u of updates) {
      if (typeof u.update_id !== 'number' || u.update_id < offset) continue;
      await handleUpdate(u);
      offset = u.update_id + 1;
      await cap().kv.set('offset', offset);
    }
  }
}

// ------------------------------------------------------------------ outbound

const MEDIA_METHOD = { image: ['sendPhoto', 'photo'], audio: ['sendAudio', 'audio'], video: ['sendVideo', 'video'], file: ['sendDocument', 'document'] };

function target(out) {
  const p = { chat_id: out.chatId };
  if (out.threadId) p.message_thread_id = Number(out.threadId);
  if (out.replyTo) p.reply_parameters = { message_id: Number(String(out.replyTo).split(':').pop()), allow_sending_without_reply: true };
  return p;
}

async function send(out) {
  const key = 'sent:' + out.idempotencyKey;
  const prior = await cap().kv.get(key);
  if (prior && prior.id) return { platformMessageId: prior.id };
  let last = null;
  const media = Array.isArray(out.media) ? out.media : [];
  let text = out.text ?? '';
  for (let i = 0; i < media.length; i++) {
    const m = media[i];
    const [method, field] = MEDIA_METHOD[m.kind] ?? MEDIA_METHOD.file;
    const p = target(out);
    p[field] = m.ref; // a file_id or an https URL: Telegram fetches it
    if (i === 0 && text && text.length <= CAPTION_LIMIT) {
      p.caption = text;
      text = '';
    }
    last = await call(method, p);
  }
  if (text) last = await call('sendMessage', { ...target(out), text });
  if (!last) throw channelError('telegram: nothing to send (empty text and no media)', false);
  const id = `${out.chatId}:${last.message_id}`;
  await cap().kv.set(key, { id, at: Date.now() });
  return { platformMessageId: id };
}

async function typing(t) {
  const p = { chat_id: t.chatId, action: 'typing' };
  if (t.threadId) p.message_thread_id = Number(t.threadId);
  await call('sendChatAction', p);
}

async function pruneSent() {
  const now = Date.now();
  for (const row of await cap().kv.list('sent:')) if (!row.value || now - row.value.at > SENT_TTL_MS) await cap().kv.delete(row.key);
}

// ------------------------------------------------------------------ hooks

async function start(ctx) {
  cfg = (ctx && ctx.config) || cap().config || {};
  api = String(cfg.apiBaseUrl || DEFAULT_API).replace(/\/+$/, '');
  me = await call('getMe', {});
  offset = Number((await cap().kv.get('offset')) ?? 0);
  seenWebhook = new Set();
  running = true;
  await pruneSent();
  await cap().bus.subscribe('channel.outbound.telegram', async (m) => {
    const p = m && m.payload;
    if (p && p.type === 'typing' && p.chatId) await typing(p).catch((e) => cap().log.warn('telegram: typing failed', { error: e.message }));
  });
  if (cfg.mode === 'webhook') {
    const params = { url: String(cfg.webhookUrl), allowed_updates: ['message', 'channel_post'], secret_token: WEBHOOK_SECRET };
    await call('setWebhook', params);
    await cap().bus.subscribe('channel.webhook.telegram', async (m) => {
      const u = m && m.payload;
      if (!u || typeof u.update_id !== 'number' || u.update_id < offset || seenWebhook.has(u.update_id)) return;
      seenWebhook.add(u.update_id);
      if (seenWebhook.size > 1000) seenWebhook = new Set([...seenWebhook].slice(-500));
      await handleUpdate(u);
    });
  } else {
    void pollLoop(++gen).catch((e) => cap().log.error('telegram: poll loop ended', { error: e.message }));
  }
  cap().log.info('telegram: started', { bot: me.username, mode: cfg.mode === 'webhook' ? 'webhook' : 'polling' });
}

async function stop() {
  running = false;
  gen++;
}

export { start, send, stop, typing, toInbound, isMention };
