// Network access performed by the kernel on a plugin's behalf: allowlist, DNS
// pinned to the checked address (no rebinding between check and connect),
// private ranges refused unless listed literally, redirects followed by hand and
// re-checked hop by hop, `{{secret:NAME}}` substituted only for hosts listed for
// that secret, and the substituted values scrubbed from whatever comes back.

import type { IncomingMessage, RequestOptions } from 'node:http';
import type { RequestOptions as HttpsRequestOptions } from 'node:https';
import type { Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP, type LookupFunction } from 'node:net';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import type { Readable } from 'node:stream';
import { check, CapabilityDenied, type Descriptor } from './capabilities.ts';
import type { Grant } from './grant.ts';
import type { SecretsSource } from '../secrets/source.ts';
import { isPrivateAddress } from './addresses.ts';
import { partialSecretTail, redactString } from '../log/redact.ts';
import type { FetchInit, FetchResult } from '../plugin-api.ts';

// Not `import ... from 'node:http'`: an ES module namespace of node:http reads its
// lazy WebSocket getter, which loads undici (~3 MB) into a gateway that never uses it.
const { request: httpRequest } = process.getBuiltinModule('node:http');
const { request: httpsRequest } = process.getBuiltinModule('node:https');

export const PLACEHOLDER = /\{\{secret:([A-Z][A-Z0-9_]{0,63})\}\}/g;
const MAX_REDIRECTS = 5;
// Set by the kernel, never by the plugin: they decide where and how bytes travel.
const DROPPED_HEADERS = new Set(['host', 'connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'content-length']);

export interface NetOptions {
  grant: Grant;
  secrets: SecretsSource;
  maxResponseBytes: number;
  maxTimeoutMs: number;
  /** Resolve a name (tests may point names at loopback). */
  resolve?: (host: string) => Promise<{ address: string; family: number }[]>;
  /**
   * An HTTP(S) proxy every request goes through (a provider's `providers.<id>.proxy`):
   * https by CONNECT, TLS verified end to end with the target; http in absolute form.
   * The user configured it, so it is not checked against the grant; the targets are.
   */
  proxy?: URL | null;
}

export interface KernelFetchInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array | null;
  timeoutMs?: number;
  signal?: AbortSignal;
  /**
   * Substitute `{{secret:NAME}}` in the body too. Off unless a call asks for it
   * (`secretsInBody`): bodies carry text that users, web pages and the model can
   * steer, and a placeholder smuggled in there would post the secret to a host the
   * attacker can read back. URLs and headers are written by the plugin itself.
   */
  bodySecrets?: boolean;
}

export interface StreamedResponse {
  status: number;
  statusText: string;
  headers: Record<string, string>;
  url: string;
  body: AsyncIterable<Buffer>;
  /** Scrub the secret values this request used from a string. */
  scrub(text: string): string;
  abort(): void;
}

export class NetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NetError';
  }
}

/** A name DNS did not resolve here (a proxy may still reach it). */
class UnresolvedName extends NetError {}

function need(grant: Grant, d: Descriptor): void {
  const decision = check(grant, d);
  if (!decision.allowed) throw new CapabilityDenied(grant.pluginId, d, decision.reason);
}

/** Replace `{{secret:NAME}}` with values, each only if the checkpoint lets NAME go to `host`; values used are added to `used`. */
export function substitute(text: string, host: string, opts: Pick<NetOptions, 'grant' | 'secrets'>, used: Set<string>): string {
  return text.replace(PLACEHOLDER, (_m, name: string) => {
    need(opts.grant, { cap: 'secret', name, host });
    const value = opts.secrets.get(name);
    if (value === undefined) throw new NetError(`secret ${name} is not set (carapace secrets set ${name})`);
    used.add(value);
    return value;
  });
}

interface Hop {
  url: URL;
  host: string;
  port: number;
  address: string;
  family: number;
}

async function checkTarget(rawUrl: string, opts: NetOptions, used: Set<string>): Promise<Hop & { substituted: string }> {
  let template: URL;
  try {
    template = new URL(rawUrl.replace(PLACEHOLDER, 'secret'));
  } catch {
    throw new NetError(`not a valid URL`);
  }
  if (template.protocol !== 'http:' && template.protocol !== 'https:') throw new NetError(`only http and https URLs can be fetched, not ${template.protocol}`);
  if (template.username || template.password) throw new NetError('credentials in URLs are not allowed; use a {{secret:NAME}} header');
  const host = template.hostname.replace(/^\[|\]$/g, '');
  const port = Number(template.port || (template.protocol === 'https:' ? 443 : 80));
  need(opts.grant, { cap: 'net', host, port });
  const substituted = substitute(rawUrl, host, opts, used);
  const url = new URL(substituted);
  if (url.hostname !== template.hostname || url.port !== template.port || url.protocol !== template.protocol || url.username || url.password) {
    throw new NetError('a secret value changed the destination of the URL; refusing');
  }
  const pinned = opts.proxy ? await proxiedTarget(host, port, opts) : await resolveTarget(host, port, opts);
  return { url, host, port, ...pinned, substituted };
}

/**
 * Through a proxy the proxy resolves the name, and a machine behind one often
 * cannot resolve outside names at all: the grant is checked for host:port, and
 * every address the name does resolve to here must pass as without a proxy.
 */
async function proxiedTarget(host: string, port: number, opts: NetOptions): Promise<{ address: string; family: number }> {
  try {
    return await resolveTarget(host, port, opts);
  } catch (err) {
    if (err instanceof UnresolvedName) return { address: host, family: 0 };
    throw err;
  }
}

/**
 * host:port through the checkpoint, then DNS, then every resolved address through
 * it again (private ranges only for literal grants). The first address is the one
 * to connect to, pinned so that no second lookup can rebind it.
 */
export async function resolveTarget(host: string, port: number, opts: Pick<NetOptions, 'grant' | 'resolve'>): Promise<{ address: string; family: number }> {
  need(opts.grant, { cap: 'net', host, port });
  let addresses: { address: string; family: number }[];
  if (isIP(host)) addresses = [{ address: host, family: isIP(host) }];
  else {
    try {
      addresses = opts.resolve ? await opts.resolve(host) : await dnsLookup(host, { all: true, verbatim: true });
    } catch (err) {
      throw new UnresolvedName(`cannot resolve ${host}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  if (addresses.length === 0) throw new UnresolvedName(`cannot resolve ${host}`);
  // Every address must pass: a name that resolves to one public and one private address is refused.
  for (const a of addresses) need(opts.grant, { cap: 'net.address', host, port, address: a.address, private: isPrivateAddress(a.address) });
  return { address: addresses[0].address, family: addresses[0].family };
}

export function pinnedLookup(address: string, family: number): LookupFunction {
  return ((_host: string, options: { all?: boolean }, cb: (...args: unknown[]) => void) => {
    if (options && options.all) cb(null, [{ address, family }]);
    else cb(null, address, family);
  }) as unknown as LookupFunction;
}

function send(hop: Hop, method: string, headers: Record<string, string>, body: Uint8Array | string | null, signal: AbortSignal, proxy?: URL | null): Promise<IncomingMessage> {
  const { request, target, options } = route(hop, headers, signal, proxy);
  return new Promise((resolve, reject) => {
    const req = request(target, { method, headers, signal, ...options }, resolve);
    req.on('error', reject);
    if (body !== null && body !== undefined) req.end(body);
    else req.end();
  });
}

type Request = typeof httpRequest;

/** Where a request connects, and how: straight to the pinned address, or through the proxy. */
function route(hop: Hop, headers: Record<string, string>, signal: AbortSignal, proxy?: URL | null): { request: Request; target: URL; options: RequestOptions } {
  const servername = isIP(hop.host) ? undefined : hop.host;
  if (!proxy) {
    return { request: hop.url.protocol === 'https:' ? httpsRequest : httpRequest, target: hop.url, options: { lookup: pinnedLookup(hop.address, hop.family), agent: false, servername } as HttpsRequestOptions };
  }
  if (hop.url.protocol === 'http:') {
    // Absolute form: the proxy is what is connected to, and is told where to.
    return { request: proxyRequest(proxy), target: proxy, options: { path: hop.url.href, headers: { ...headers, host: hop.url.host }, agent: false } };
  }
  // The tunnel first; then TLS with the target inside it, verified for the target's name.
  const tunnel = connectTunnel(proxy, hop, signal);
  const createConnection: RequestOptions['createConnection'] = (_opts, done) => {
    tunnel.then((socket) => done(null, tlsConnect({ socket, host: hop.host, servername })), (err: Error) => done(err, undefined as unknown as Socket));
    return undefined;
  };
  return { request: httpsRequest, target: hop.url, options: { createConnection } };
}

const proxyRequest = (proxy: URL) => (proxy.protocol === 'https:' ? httpsRequest : httpRequest);

function connectTunnel(proxy: URL, hop: Hop, signal: AbortSignal): Promise<Socket> {
  const authority = `${isIP(hop.host) === 6 ? `[${hop.host}]` : hop.host}:${hop.port}`;
  return new Promise((resolve, reject) => {
    const req = proxyRequest(proxy)(proxy, { method: 'CONNECT', path: authority, headers: { host: authority }, agent: false, signal });
    req.on('connect', (res, socket, head) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        reject(new Error(`proxy ${proxy.host} answered CONNECT ${authority} with ${res.statusCode}`));
        return;
      }
      if (head.length) socket.unshift(head);
      resolve(socket);
    });
    req.on('error', reject);
    req.end();
  });
}

function decoded(res: IncomingMessage): Readable {
  const enc = String(res.headers['content-encoding'] ?? '').toLowerCase().trim();
  if (enc === 'gzip' || enc === 'x-gzip') return res.pipe(createGunzip());
  if (enc === 'deflate') return res.pipe(createInflate());
  if (enc === 'br') return res.pipe(createBrotliDecompress());
  return res;
}

/** The kernel's fetch: returns once headers arrive; the body streams (and is capped). */
export async function kernelFetchStream(rawUrl: string, init: KernelFetchInit, opts: NetOptions): Promise<StreamedResponse> {
  const used = new Set<string>();
  const scrub = (text: string) => (used.size ? redactString(text, used) : text);
  const timeoutMs = Math.min(Math.max(1, init.timeoutMs ?? opts.maxTimeoutMs), opts.maxTimeoutMs);
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new NetError(`request timed out after ${timeoutMs} ms`)), timeoutMs);
  timer.unref?.();
  const onAbort = () => ac.abort(new NetError('request aborted'));
  init.signal?.addEventListener('abort', onAbort, { once: true });
  const finish = () => {
    clearTimeout(timer);
    init.signal?.removeEventListener('abort', onAbort);
  };
  try {
    let method = (init.method ?? 'GET').toUpperCase();
    if (!/^[A-Z]{1,16}$/.test(method)) throw new NetError(`bad method ${method}`);
    let body: string | Uint8Array | null = init.body ?? null;
    let current = rawUrl;
    for (let hopNo = 0; ; hopNo++) {
      const hop = await checkTarget(current, opts, used);
      const headers: Record<string, string> = { 'accept-encoding': 'gzip, deflate, br' };
      for (const [k, v] of Object.entries(init.headers ?? {})) {
        if (DROPPED_HEADERS.has(k.toLowerCase())) continue;
        if (/[{}]/.test(k)) throw new NetError('secret placeholders are allowed in header values only');
        headers[k.toLowerCase()] = substitute(String(v), hop.host, opts, used);
      }
      const sentBody = typeof body === 'string' && init.bodySecrets === true ? substitute(body, hop.host, opts, used) : body;
      if (sentBody !== null) headers['content-length'] = String(typeof sentBody === 'string' ? Buffer.byteLength(sentBody) : sentBody.byteLength);
      let res: IncomingMessage;
      try {
        res = await send(hop, method, headers, sentBody, ac.signal, opts.proxy);
      } catch (err) {
        if (ac.signal.aborted && ac.signal.reason instanceof Error) throw ac.signal.reason;
        throw new NetError(scrub(`request to ${hop.host}:${hop.port} failed: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`));
      }
      const status = res.statusCode ?? 0;
      const location = res.headers.location;
      if ([301, 302, 303, 307, 308].includes(status) && location) {
        res.resume();
        if (hopNo >= MAX_REDIRECTS) throw new NetError(`too many redirects (more than ${MAX_REDIRECTS})`);
        // The next hop is checked from scratch: allowlist, DNS, private ranges, secrets.
        current = new URL(location, hop.url).toString();
        for (const value of used) if (current.includes(value)) throw new NetError('refusing to follow a redirect that carries a secret value');
        if (status === 303 || ((status === 301 || status === 302) && method === 'POST')) {
          method = 'GET';
          body = null;
        }
        continue;
      }
      const outHeaders: Record<string, string> = {};
      for (const [k, v] of Object.entries(res.headers)) {
        if (v === undefined) continue;
        outHeaders[k] = scrub(Array.isArray(v) ? v.join(', ') : v);
      }
      const stream = decoded(res);
      if (stream !== res) {
        delete outHeaders['content-encoding'];
        delete outHeaders['content-length'];
      }
      const max = opts.maxResponseBytes;
      // Bytes as latin1 text, one char per byte, so values are matched by their UTF-8 bytes.
      const values = [...used].map((v) => Buffer.from(v, 'utf8').toString('latin1'));
      async function* capped(): AsyncIterable<Buffer> {
        let total = 0;
        // A chunk may end inside a secret value: hold that tail back until the next chunk completes or clears it.
        let held = '';
        try {
          for await (const chunk of stream as AsyncIterable<Buffer>) {
            total += chunk.length;
            if (total > max) throw new NetError(`response larger than ${max} bytes`);
            if (values.length === 0) {
              yield chunk;
              continue;
            }
            const text = redactString(held + chunk.toString('latin1'), values);
            const tail = partialSecretTail(text, values);
            held = text.slice(text.length - tail);
            if (text.length > tail) yield Buffer.from(text.slice(0, text.length - tail), 'latin1');
          }
          if (held) yield Buffer.from(held, 'latin1');
        } catch (err) {
          if (err instanceof NetError) throw err;
          if (ac.signal.aborted && ac.signal.reason instanceof Error) throw ac.signal.reason;
          throw new NetError(scrub(`response from ${hop.host} failed: ${(err as Error).message}`));
        } finally {
          finish();
          res.destroy();
        }
      }
      return {
        status,
        statusText: res.statusMessage ?? '',
        headers: outHeaders,
        url: scrub(hop.url.toString()),
        body: capped(),
        scrub,
        abort: () => ac.abort(new NetError('request aborted')),
      };
    }
  } catch (err) {
    finish();
    if (err instanceof Error) err.message = scrub(err.message);
    throw err;
  }
}

/** `carapace.net.fetch`: the whole (text) body, capped, with secrets scrubbed. */
export async function kernelFetch(url: string, init: FetchInit, opts: NetOptions): Promise<FetchResult> {
  const res = await kernelFetchStream(url, { method: init.method, headers: init.headers, body: init.body ?? null, timeoutMs: init.timeoutMs, bodySecrets: init.secretsInBody === true }, opts);
  const chunks: Buffer[] = [];
  for await (const c of res.body) chunks.push(c);
  return { status: res.status, statusText: res.statusText, headers: res.headers, url: res.url, body: res.scrub(Buffer.concat(chunks).toString('utf8')) };
}
