// The Control UI's file server: ui/ plus the two kernel modules the page shares
// with the CLI (the bus client and its error type). TypeScript is served as
// JavaScript by stripping types (node:module), cached per file until its mtime
// changes — so there is still no build step, and an edit shows on reload.
import { stripTypeScriptTypes } from 'node:module';
import { createHash } from 'node:crypto';
import { readFile, stat, realpath } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { sep } from 'node:path';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../log/logger.ts';

/**
 * No inline script or style, nothing from another origin; `connect-src 'self'`
 * lets the page open ws:// to its own host and port and nowhere else, so even a
 * script injected into the page cannot carry a device signature elsewhere.
 */
export const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CSP,
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=()',
};

const TYPES: Record<string, string> = {
  ts: 'text/javascript; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  html: 'text/html; charset=utf-8',
  svg: 'image/svg+xml',
  png: 'image/png',
  ico: 'image/x-icon',
  webmanifest: 'application/manifest+json',
};

/** Kernel modules the page may load, by exact URL: nothing else of core/ is reachable. */
const SHARED = new Set(['/core/client/client.ts', '/core/errors.ts', '/core/bus/signing.ts', '/core/bus/topics.ts']);

const SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$/;

export interface StaticFile {
  body: Buffer;
  type: string;
  etag: string;
}

interface Cached extends StaticFile {
  mtimeMs: number;
  size: number;
}

export interface StaticFiles {
  /** The file for a URL path, or null when it is not part of the UI. */
  get(urlPath: string): Promise<StaticFile | null>;
  send(req: FastifyRequest, reply: FastifyReply, file: StaticFile | null): Promise<void>;
}

export function createStaticFiles(opts: { root?: URL; log: Logger }): StaticFiles {
  const root = fileURLToPath(opts.root ?? new URL('../../', import.meta.url));
  const cache = new Map<string, Cached>();

  /** URL path → file path, or null: only /ui/<segments> with a known extension, or a shared module. */
  function resolve(urlPath: string): string | null {
    let path: string;
    try {
      path = decodeURIComponent(urlPath);
    } catch {
      return null;
    }
    if (SHARED.has(path)) return root + path.slice(1).split('/').join(sep);
    const parts = path.split('/');
    if (parts[0] !== '' || parts[1] !== 'ui' || parts.length < 3) return null;
    const rest = parts.slice(2);
    if (!rest.every((s) => SEGMENT.test(s) && s !== '.' && s !== '..')) return null;
    const ext = rest[rest.length - 1]!.split('.').pop()!;
    if (!(ext in TYPES) || rest[rest.length - 1] === ext) return null;
    return root + ['ui', ...rest].join(sep);
  }

  async function get(urlPath: string): Promise<StaticFile | null> {
    const file = resolve(urlPath);
    if (!file) return null;
    let st;
    try {
      // A symlink inside ui/ must not lead out of the project.
      const real = await realpath(file);
      if (!real.startsWith(root)) return null;
      st = await stat(real);
      if (!st.isFile()) return null;
    } catch {
      return null;
    }
    const hit = cache.get(file);
    if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit;
    const raw = await readFile(file);
    const ext = file.split('.').pop()!;
    let body = raw;
    if (ext === 'ts') {
      try {
        body = Buffer.from(stripTypeScriptTypes(raw.toString('utf8'), { mode: 'strip', sourceUrl: urlPath }));
      } catch (err) {
        opts.log.error('cannot strip types from a UI module', { path: urlPath, err });
        throw err;
      }
    }
    const entry: Cached = { body, type: TYPES[ext]!, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`, mtimeMs: st.mtimeMs, size: st.size };
    cache.set(file, entry);
    return entry;
  }

  async function send(req: FastifyRequest, reply: FastifyReply, f: StaticFile | null): Promise<void> {
    reply.headers(SECURITY_HEADERS);
    if (!f) {
      await reply.code(404).type('text/plain; charset=utf-8').send('not found\n');
      return;
    }
    // Revalidate every time: the page must never run a stale client against a newer gateway.
    reply.header('cache-control', 'no-cache').header('etag', f.etag).type(f.type);
    if (req.headers['if-none-match'] === f.etag) {
      await reply.code(304).send();
      return;
    }
    await reply.send(f.body);
  }

  return { get, send };
}
