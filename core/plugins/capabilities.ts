// THE checkpoint: "may plugin P do X to Y?" for every capability kind, with the
// grant as data. Deny wins over allow. Every host function a sandbox can reach
// (net, secrets, fs, bus, env, exec) asks `check` first and does nothing
// policy-shaped itself; a new capability is a new descriptor here.

import { isIP } from 'node:net';
import { sep } from 'node:path';
import type { Grant } from './grant.ts';
import type { Permissions } from './permissions.ts';

export type Descriptor =
  | { cap: 'net'; host: string; port: number }
  /** May the plugin reach this resolved address for this host? (private ranges need a literal grant) */
  | { cap: 'net.address'; host: string; port: number; address: string; private: boolean }
  | { cap: 'secret'; name: string; host: string }
  /** `path` is already resolved (symlinks too) to an absolute real path. */
  | { cap: 'fs.read' | 'fs.write'; path: string; roots: string[]; denyRoots: string[] }
  | { cap: 'bus.publish' | 'bus.subscribe'; topic: string }
  | { cap: 'env'; name: string }
  | { cap: 'exec' }
  | { cap: 'worker' };

export type Decision = { allowed: true } | { allowed: false; reason: string };

export class CapabilityDenied extends Error {
  readonly descriptor: Descriptor;
  constructor(pluginId: string, d: Descriptor, reason: string) {
    super(`plugin ${pluginId} may not ${describe(d)}: ${reason}`);
    this.name = 'CapabilityDenied';
    this.descriptor = d;
  }
}

export function describe(d: Descriptor): string {
  switch (d.cap) {
    case 'net':
      return `connect to ${hostPort(d.host, d.port)}`;
    case 'net.address':
      return `connect to ${hostPort(d.host, d.port)} at ${d.address}`;
    case 'secret':
      return `send secret ${d.name} to ${d.host}`;
    case 'fs.read':
      return `read ${d.path}`;
    case 'fs.write':
      return `write ${d.path}`;
    case 'bus.publish':
      return `publish on ${d.topic}`;
    case 'bus.subscribe':
      return `subscribe to ${d.topic}`;
    case 'env':
      return `read env ${d.name}`;
    case 'exec':
      return 'run programs';
    case 'worker':
      return 'run in a worker thread';
  }
}

function hostPort(host: string, port: number): string {
  return `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}

/**
 * `*.example.com` matches subdomains (not the apex); `*` matches any host — the
 * address checks still refuse private, loopback and link-local targets, which only
 * a literal entry unlocks; anything else matches exactly (case-insensitive).
 */
export function hostMatches(pattern: string, host: string): boolean {
  const p = pattern.toLowerCase().replace(/^\[|\]$/g, '');
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  if (p === '*') return true;
  if (p.startsWith('*.')) return h.endsWith(p.slice(1)) && h.length > p.length - 1;
  return p === h;
}

function netListed(entries: readonly string[] | undefined, host: string, port: number): boolean {
  return (entries ?? []).some((e) => {
    const i = e.lastIndexOf(':');
    return Number(e.slice(i + 1)) === port && hostMatches(e.slice(0, i), host);
  });
}

/** Bus patterns: `*` one segment, `>` the rest (at the end). */
export function topicMatches(pattern: string, topic: string): boolean {
  const p = pattern.split('.');
  const t = topic.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return i < t.length;
    if (i >= t.length) return false;
    if (p[i] !== '*' && p[i] !== t[i]) return false;
  }
  return p.length === t.length;
}

/** For subscribe: the requested pattern must be covered by a granted one (every topic it matches, the grant matches). */
export function patternCovers(grant: string, requested: string): boolean {
  const g = grant.split('.');
  const r = requested.split('.');
  for (let i = 0; i < g.length; i++) {
    if (g[i] === '>') return i < r.length;
    if (i >= r.length) return false;
    if (r[i] === '>') return false;
    if (g[i] !== '*' && (r[i] === '*' || g[i] !== r[i])) return false;
  }
  return g.length === r.length;
}

function underRoot(path: string, root: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
}

function listedIn(p: Permissions & { worker: boolean }, d: Descriptor, configured: readonly string[] = []): boolean {
  switch (d.cap) {
    case 'net':
      return netListed(p.net, d.host, d.port);
    case 'net.address':
      // A private address only when the literal address (or "localhost" for loopback) is what was listed,
      // or the user named exactly this host:port in config.
      if (!d.private) return netListed(p.net, d.host, d.port);
      {
        if (netListed(configured.filter((n) => !n.startsWith('*')), d.host, d.port) && netListed(p.net, d.host, d.port)) return true;
        // Wildcards (`*`, `*.example.com`) never unlock a private address.
        const literal = (p.net ?? []).filter((n) => !n.startsWith('*'));
        if (isIP(d.host.replace(/^\[|\]$/g, '')) !== 0) return d.host.replace(/^\[|\]$/g, '') === d.address && netListed(literal, d.host, d.port);
        return d.host.toLowerCase() === 'localhost' && /^(127\.|::1$|::ffff:127\.)/.test(d.address) && netListed(literal, 'localhost', d.port);
      }
    case 'secret':
      return (p.secrets?.[d.name] ?? []).some((h) => hostMatches(h, d.host));
    case 'fs.read':
    case 'fs.write':
      // `roots` are the real paths of the roots this grant names, resolved by the caller.
      return d.roots.some((r) => underRoot(d.path, r));
    case 'bus.publish':
      return (p.bus?.publish ?? []).some((g) => topicMatches(g, d.topic));
    case 'bus.subscribe':
      return (p.bus?.subscribe ?? []).some((g) => patternCovers(g, d.topic));
    case 'env':
      return (p.env ?? []).includes(d.name);
    case 'exec':
      return p.exec === true;
    case 'worker':
      return p.worker;
  }
}

/** The one question. Deny wins; an fs descriptor carries the allowed roots already intersected by `fsRoots`. */
export function check(grant: Grant, d: Descriptor): Decision {
  if (d.cap === 'fs.read' || d.cap === 'fs.write') {
    if (d.roots.length === 0) return { allowed: false, reason: `no ${d.cap} root is granted` };
  }
  const denied = d.cap === 'fs.read' || d.cap === 'fs.write' ? d.denyRoots.some((r) => underRoot(d.path, r)) : listedIn(grant.deny, d);
  if (denied) return { allowed: false, reason: 'denied by config' };
  if (!listedIn(grant.allow, d, grant.configured)) {
    if (d.cap === 'net.address' && d.private) return { allowed: false, reason: `${d.address} is a private, loopback or link-local address and the literal host is not granted` };
    return { allowed: false, reason: 'not granted' };
  }
  return { allowed: true };
}

export function require_(grant: Grant, d: Descriptor): void {
  const decision = check(grant, d);
  if (!decision.allowed) throw new CapabilityDenied(grant.pluginId, d, decision.reason);
}

/** The `$ROOT/sub` entries allowed (or denied) for an fs op, as unresolved absolute paths. */
export function fsRoots(grant: Grant, op: 'read' | 'write', which: 'allow' | 'deny' = 'allow'): string[] {
  const expand = (r: string) => r.replace(/^\$(WORKSPACE|PLUGIN_DATA)/, (_m, name: 'WORKSPACE' | 'PLUGIN_DATA') => grant.roots[name]);
  return (grant[which].fs?.[op] ?? []).map(expand);
}
