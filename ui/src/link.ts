// What the address bar may tell the page. Only `#invite=CODE` is taken (a
// fragment never reaches a server, a log or a Referer). A link that names a
// gateway — `?gatewayUrl=ws://…`, `#gateway=…`, any ws:// or http(s):// value
// pointing elsewhere — is reported, never followed: the page connects only to
// the origin that served it (OpenClaw CVE-2026-25253 was a Control UI that took
// `gatewayUrl` from the query string and handed its token to whoever it named).

export interface LinkInfo {
  invite: string | null;
  /** A gateway address the link tried to point the page at, if any. */
  foreignGateway: string | null;
}

const GATEWAY_KEYS = /^(gateway|gatewayurl|gateway_url|url|ws|wsurl|ws_url|host|server|endpoint|target)$/i;

function params(text: string): URLSearchParams {
  return new URLSearchParams(text.replace(/^[?#]/, ''));
}

export function readLink(loc: { search: string; hash: string; origin: string; host: string }): LinkInfo {
  let invite: string | null = null;
  let foreign: string | null = null;
  // A fragment is a view route (`#/chat`, optionally `#/chat?k=v`) or bare parameters (`#invite=…`).
  const frag = loc.hash.replace(/^#/, '');
  const fragParams = frag.startsWith('/') ? (frag.includes('?') ? frag.slice(frag.indexOf('?') + 1) : '') : frag;
  for (const [source, p] of [['query', params(loc.search)], ['fragment', params(fragParams)]] as const) {
    for (const [k, v] of p) {
      if (source === 'fragment' && k === 'invite' && /^[0-9A-Za-z-]{8,16}$/.test(v)) {
        invite = v;
        continue;
      }
      let named: URL | null = null;
      try {
        named = new URL(v);
      } catch {
        // not a URL
      }
      const pointsElsewhere = named !== null && /^(wss?|https?):$/.test(named.protocol) && named.host !== loc.host;
      if (pointsElsewhere || (GATEWAY_KEYS.test(k) && v !== '' && !(named && named.host === loc.host))) foreign ??= v.slice(0, 200);
    }
  }
  return { invite, foreignGateway: foreign };
}

/** The bus endpoint of the page's own origin — the only one it ever opens. */
export function ownBusUrl(loc: { protocol: string; host: string }): string {
  return `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}/ws`;
}
