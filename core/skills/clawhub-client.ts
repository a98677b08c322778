// A small client for the ClawHub HTTP API (the routes and shapes the clawhub
// 0.23 CLI uses), so `carapace skills` works against ClawHub itself and
// against `carapace registry serve` alike. Responses are checked for the
// fields we rely on; anything else is ignored, as clawhub's own schemas do.

export const DEFAULT_REGISTRY = 'https://clawhub.ai'; // clawhub's DEFAULT_REGISTRY
const REQUEST_TIMEOUT_MS = 15_000;
const MAX_ZIP_BYTES = 60 * 1024 * 1024;

export class RegistryRequestError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = 'RegistryRequestError';
    this.status = status;
  }
}

export interface SearchResult {
  slug: string;
  displayName: string;
  summary: string | null;
  version: string | null;
  owner: string | null;
  score: number;
}

export interface SkillMeta {
  slug: string;
  displayName: string;
  latestVersion: string | null;
  owner: string | null;
  malware: boolean;
  suspicious: boolean;
}

export interface VersionMeta {
  version: string;
  files: { path: string; sha256: string }[] | null;
  yanked: string | null;
}

function str(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

export function apiUrl(registry: string, path: string, params: Record<string, string | undefined> = {}): URL {
  const base = registry.endsWith('/') ? registry : `${registry}/`;
  const url = new URL(path.replace(/^\//, ''), base);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.set(k, v);
  return url;
}

/** A GET to a registry; a non-2xx answer becomes a RegistryRequestError carrying its message. */
export async function registryRequest(url: URL, accept: string, token?: string): Promise<Response> {
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new RegistryRequestError(0, `unsupported registry URL ${url.origin}`);
  const headers: Record<string, string> = { accept };
  if (token) headers.authorization = `Bearer ${token}`;
  let res: Response;
  try {
    res = await fetch(url, { headers, redirect: 'follow', signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  } catch (err) {
    throw new RegistryRequestError(0, `cannot reach the registry at ${url.origin}: ${(err as Error).message}`);
  }
  if (!res.ok) {
    const text = (await res.text().catch(() => '')).slice(0, 300);
    let message = text;
    try {
      const parsed = JSON.parse(text) as { message?: unknown };
      if (typeof parsed.message === 'string') message = parsed.message;
    } catch {
      // plain-text error bodies are the ClawHub norm
    }
    throw new RegistryRequestError(res.status, message || `HTTP ${res.status}`);
  }
  return res;
}

async function getJson(url: URL, token?: string): Promise<Record<string, unknown>> {
  const res = await registryRequest(url, 'application/json', token);
  const body = (await res.json().catch(() => null)) as unknown;
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new RegistryRequestError(res.status, `${url.pathname}: the registry answered with something that is not a JSON object`);
  return body as Record<string, unknown>;
}

export interface ClawHubClient {
  registry: string;
  search(query: string, limit?: number): Promise<SearchResult[]>;
  skill(slug: string): Promise<SkillMeta>;
  version(slug: string, version: string): Promise<VersionMeta>;
  download(slug: string, version: string): Promise<Uint8Array>;
}

export function clawHubClient(registry: string, token?: string): ClawHubClient {
  return {
    registry,
    async search(query, limit = 25) {
      const body = await getJson(apiUrl(registry, '/api/v1/search', { q: query, limit: String(limit) }), token);
      const results = Array.isArray(body.results) ? body.results : [];
      return results.flatMap((r: Record<string, unknown>) => {
        const slug = str(r.slug);
        if (!slug) return [];
        const owner = (r.owner as Record<string, unknown> | null | undefined) ?? null;
        return [{
          slug,
          displayName: str(r.displayName) ?? slug,
          summary: str(r.summary),
          version: str(r.version),
          owner: str(r.ownerHandle) ?? str(owner?.handle) ?? null,
          score: typeof r.score === 'number' ? r.score : 0,
        }];
      });
    },
    async skill(slug) {
      const body = await getJson(apiUrl(registry, `/api/v1/skills/${encodeURIComponent(slug)}`), token);
      const skill = body.skill as Record<string, unknown> | null;
      if (!skill) throw new RegistryRequestError(404, `skill not found: ${slug}`);
      const latest = body.latestVersion as Record<string, unknown> | null;
      const moderation = body.moderation as Record<string, unknown> | null | undefined;
      return {
        slug: str(skill.slug) ?? slug,
        displayName: str(skill.displayName) ?? slug,
        latestVersion: str(latest?.version),
        owner: str((body.owner as Record<string, unknown> | null)?.handle),
        malware: moderation?.isMalwareBlocked === true,
        suspicious: moderation?.isSuspicious === true,
      };
    },
    async version(slug, version) {
      const body = await getJson(apiUrl(registry, `/api/v1/skills/${encodeURIComponent(slug)}/versions/${encodeURIComponent(version)}`), token);
      const v = body.version as Record<string, unknown> | null;
      if (!v) throw new RegistryRequestError(404, `version not found: ${slug}@${version}`);
      const rawFiles = Array.isArray(v.files) ? v.files : null;
      const files = rawFiles?.every((f: Record<string, unknown>) => typeof f?.path === 'string' && typeof f?.sha256 === 'string')
        ? rawFiles.map((f: Record<string, unknown>) => ({ path: f.path as string, sha256: (f.sha256 as string).toLowerCase() }))
        : null;
      const yanked = v.yanked as Record<string, unknown> | undefined;
      return { version: str(v.version) ?? version, files, yanked: yanked ? (str(yanked.reason) ?? 'yanked') : null };
    },
    async download(slug, version) {
      const res = await registryRequest(apiUrl(registry, '/api/v1/download', { slug, version }), 'application/zip', token);
      const declared = Number(res.headers.get('content-length') ?? '0');
      if (declared > MAX_ZIP_BYTES) throw new RegistryRequestError(413, `the archive for ${slug}@${version} is larger than ${MAX_ZIP_BYTES} bytes`);
      return readCapped(res, MAX_ZIP_BYTES, `the archive for ${slug}@${version}`);
    },
  };
}

/** Read a response body, giving up as soon as it passes `max` bytes (a lying content-length cannot fill memory). */
export async function readCapped(res: Response, max: number, what: string): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (!res.body) return new Uint8Array();
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    total += chunk.length;
    if (total > max) throw new RegistryRequestError(413, `${what} is larger than ${max} bytes`);
    chunks.push(chunk);
  }
  return new Uint8Array(Buffer.concat(chunks));
}
