import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Ajv } from 'ajv';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { CarapaceError, ERROR_CODES, type ErrorCode } from '../errors.ts';
import { fromB64, keyIdOf, loadOrCreateKey, type KeyPair } from '../identity/keys.ts';
import { ArchiveError, MAX_PLUGIN_TARBALL_BYTES } from './archive-path.ts';
import type { ManifestVerifier } from './manifest-verifier.ts';
import { compareSemver, isSemver } from './semver.ts';
import { DEFAULT_INDEX_TTL_MS, registryPublicKey, signIndex, type PackageIndex } from './signed-index.ts';
import { skillFingerprint } from './skill-hash.ts';
import { checkSkillFileList, isSkillManifestPath, parseSkillFrontmatter, SKILL_SLUG, SkillFormatError, MAX_SKILL_FILE_BYTES } from './skill-format.ts';
import { openRegistryStore, RegistryConflict, type RegistryStore, type SkillRow, type SkillVersionRow } from './store.ts';
import { readTgz } from './tar.ts';
import { writeZip } from './zip.ts';

// `carapace registry serve`: the subset of ClawHub's HTTP API (routes as the
// clawhub 0.23 CLI calls them, response shapes from its dist/schema) needed by
// search, explore, inspect, install, update and `skill publish`, plus the
// Carapace plugin endpoints with a registry-signed package index.


export interface RegistryServerOptions {
  dataDir: string;
  verifier: ManifestVerifier;
  now?: () => number;
  indexTtlMs?: number;
  logger?: boolean;
}

export interface RegistryServer {
  app: FastifyInstance;
  store: RegistryStore;
  key: KeyPair;
  close(): Promise<void>;
}

const ajv = new Ajv({ allErrors: false, strict: false });

const validateUploadUrl = ajv.compile({
  type: 'object',
  required: ['path', 'size', 'sha256'],
  properties: {
    path: { type: 'string', minLength: 1, maxLength: 512 },
    size: { type: 'integer', minimum: 0 },
    sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
    contentType: { type: 'string', maxLength: 200 },
  },
});

const validatePublish = ajv.compile({
  type: 'object',
  required: ['slug', 'displayName', 'version', 'files'],
  properties: {
    slug: { type: 'string', maxLength: 64 },
    displayName: { type: 'string', minLength: 1, maxLength: 200 },
    ownerHandle: { type: 'string', maxLength: 64 },
    version: { type: 'string', maxLength: 64 },
    changelog: { type: 'string', maxLength: 20000 },
    tags: { type: 'array', items: { type: 'string', maxLength: 64 }, maxItems: 20 },
    files: {
      type: 'array',
      maxItems: 1000,
      items: {
        type: 'object',
        required: ['path', 'size', 'storageId', 'sha256'],
        properties: {
          path: { type: 'string', maxLength: 512 },
          size: { type: 'integer', minimum: 0 },
          storageId: { type: 'string', maxLength: 100 },
          sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
          contentType: { type: 'string', maxLength: 200 },
          uploadTicket: { type: 'string', maxLength: 100 },
        },
      },
    },
  },
});

const validateYank = ajv.compile({
  type: 'object',
  required: ['reason'],
  properties: { reason: { type: 'string', minLength: 1, maxLength: 500 } },
});

const validateKey = ajv.compile({
  type: 'object',
  required: ['alg', 'publicKey'],
  properties: { alg: { const: 'ed25519' }, publicKey: { type: 'string', maxLength: 64 } },
});

function fail(code: ErrorCode, message: string, details?: Record<string, unknown>): never {
  throw new CarapaceError(code, message, details);
}

function mustBe<T>(check: ((v: unknown) => boolean) & { errors?: unknown }, body: unknown, what: string): T {
  if (!check(body)) {
    const err = (check.errors as { instancePath?: string; message?: string }[] | undefined)?.[0];
    fail('INVALID_REQUEST', `${what}: ${err?.instancePath || '/'} ${err?.message ?? 'is invalid'}`);
  }
  return body as T;
}

function query(req: FastifyRequest): Record<string, string | undefined> {
  return req.query as Record<string, string | undefined>;
}

function intParam(value: string | undefined, fallback: number, min: number, max: number): number {
  const n = value === undefined ? NaN : Number.parseInt(value, 10);
  return Number.isFinite(n) ? Math.min(Math.max(n, min), max) : fallback;
}

export async function createRegistryServer(opts: RegistryServerOptions): Promise<RegistryServer> {
  const now = opts.now ?? Date.now;
  const ttl = opts.indexTtlMs ?? DEFAULT_INDEX_TTL_MS;
  const store = openRegistryStore(opts.dataDir, now);
  const key = loadOrCreateKey(join(opts.dataDir, 'registry-key.json'));
  const app = Fastify({ logger: opts.logger ?? false, bodyLimit: 1024 * 1024 });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    if (err instanceof CarapaceError) {
      return reply.status(ERROR_CODES[err.code].httpStatus).send(err.toWire());
    }
    const status = err.statusCode ?? 500;
    if (status === 413) return reply.status(413).send({ code: 'PAYLOAD_TOO_LARGE', message: 'The payload is too large' });
    if (status >= 400 && status < 500) return reply.status(status).send({ code: 'INVALID_REQUEST', message: err.message });
    return reply.status(500).send({ code: 'INTERNAL', message: ERROR_CODES.INTERNAL.message });
  });
  app.setNotFoundHandler((_req, reply) => reply.status(404).send({ code: 'NOT_FOUND', message: 'Not found' }));

  const authUser = (req: FastifyRequest): string => {
    const header = req.headers.authorization;
    const m = typeof header === 'string' ? /^Bearer\s+(\S{1,200})$/.exec(header) : null;
    if (!m) fail('UNAUTHORIZED', 'Unauthorized: a publish token is required (clawhub login --token ...)');
    const user = store.userForToken(m[1]!);
    if (!user) fail('UNAUTHORIZED', 'Unauthorized: unknown or revoked token');
    return user;
  };

  const skillOr404 = (slug: string): SkillRow => {
    const skill = SKILL_SLUG.test(slug) ? store.getSkill(slug) : undefined;
    if (!skill || skill.latest === null && store.listSkillVersions(slug).length === 0) fail('NOT_FOUND', 'Skill not found');
    return skill;
  };

  const versionOr404 = (slug: string, version: string | undefined): SkillVersionRow => {
    const skill = skillOr404(slug);
    const v = version ?? skill.latest;
    const row = v ? store.getSkillVersion(slug, v) : undefined;
    if (!row) fail('NOT_FOUND', `Version not found: ${slug}@${v ?? 'latest'}`);
    return row;
  };

  const latestVersionShape = (skill: SkillRow) => {
    const row = skill.latest ? store.getSkillVersion(skill.slug, skill.latest) : undefined;
    return row ? { version: row.version, createdAt: row.created_at, changelog: row.changelog, license: null } : null;
  };

  const skillShape = (skill: SkillRow) => ({
    slug: skill.slug,
    displayName: skill.display_name,
    summary: skill.summary,
    tags: skill.latest ? { latest: skill.latest } : {},
    stats: { downloads: skill.downloads, stars: 0, installsCurrent: 0, installsAllTime: 0, versions: store.listSkillVersions(skill.slug).length },
    createdAt: skill.created_at,
    updatedAt: skill.updated_at,
  });

  // ---- ClawHub API: identity ------------------------------------------------

  app.get('/api/v1/whoami', async (req) => {
    const user = authUser(req);
    return { user: { handle: user, displayName: user, image: null, role: 'user' } };
  });

  // ---- ClawHub API: discovery ----------------------------------------------

  app.get('/api/v1/search', async (req) => {
    const q = (query(req).q ?? '').trim().toLowerCase();
    const limit = intParam(query(req).limit, 25, 1, 200);
    if (!q) return { results: [] };
    const exact = query(req).mode === 'exact';
    const terms = q.split(/\s+/).filter(Boolean);
    const scored = store.allSkills().map((s) => {
      if (exact) return { s, score: s.slug === q ? 1 : 0 };
      let score = 0;
      for (const t of terms) {
        if (s.slug === t) score += 1;
        else if (s.slug.includes(t)) score += 0.7;
        if (s.display_name.toLowerCase().includes(t)) score += 0.5;
        if ((s.summary ?? '').toLowerCase().includes(t)) score += 0.3;
      }
      return { s, score: score / terms.length };
    });
    return {
      results: scored
        .filter((r) => r.score > 0)
        .sort((a, b) => b.score - a.score || a.s.slug.localeCompare(b.s.slug))
        .slice(0, limit)
        .map(({ s, score }) => ({
          slug: s.slug,
          displayName: s.display_name,
          summary: s.summary,
          version: s.latest,
          score,
          downloads: s.downloads,
          updatedAt: s.updated_at,
          ownerHandle: s.owner,
          owner: { handle: s.owner, displayName: s.owner, image: null },
        })),
    };
  });

  app.get('/api/v1/skills', async (req) => {
    const q = query(req);
    const limit = intParam(q.limit, 25, 1, 200);
    const offset = q.cursor && /^\d{1,9}$/.test(q.cursor) ? Number(q.cursor) : 0;
    const prefix = q.prefix?.trim().toLowerCase();
    const rows = store.listSkills({ limit: limit + 1, offset, sort: q.sort ?? 'updated', prefix: prefix || undefined });
    const page = rows.slice(0, limit);
    return {
      items: page.map((s) => ({ ...skillShape(s), latestVersion: latestVersionShape(s) ?? undefined, metadata: null })),
      nextCursor: rows.length > limit ? String(offset + limit) : null,
    };
  });

  app.get('/api/v1/skills/:slug', async (req) => {
    const skill = skillOr404((req.params as { slug: string }).slug);
    return {
      skill: skillShape(skill),
      latestVersion: latestVersionShape(skill),
      metadata: null,
      owner: { handle: skill.owner, displayName: skill.owner, image: null },
      moderation: null,
    };
  });

  app.get('/api/v1/skills/:slug/moderation', async (req) => {
    skillOr404((req.params as { slug: string }).slug);
    return { moderation: null };
  });

  app.get('/api/v1/skills/:slug/versions', async (req) => {
    const slug = (req.params as { slug: string }).slug;
    skillOr404(slug);
    const limit = intParam(query(req).limit, 25, 1, 200);
    return {
      items: store.listSkillVersions(slug).slice(0, limit).map((v) => ({
        version: v.version,
        createdAt: v.created_at,
        changelog: v.changelog,
        changelogSource: 'user',
        ...(v.yanked_at !== null ? { yanked: { reason: v.yanked_reason, at: v.yanked_at } } : {}),
      })),
      nextCursor: null,
    };
  });

  app.get('/api/v1/skills/:slug/versions/:version', async (req) => {
    const { slug, version } = req.params as { slug: string; version: string };
    const row = versionOr404(slug, version);
    const skill = store.getSkill(slug)!;
    return {
      version: {
        version: row.version,
        createdAt: row.created_at,
        changelog: row.changelog,
        changelogSource: 'user',
        license: null,
        files: store.skillFiles(slug, row.version).map((f) => ({ path: f.path, size: f.size, sha256: f.sha256, contentType: f.content_type })),
        fingerprint: row.fingerprint,
        ...(row.yanked_at !== null ? { yanked: { reason: row.yanked_reason, at: row.yanked_at } } : {}),
      },
      skill: { slug: skill.slug, displayName: skill.display_name },
    };
  });

  app.get('/api/v1/skills/:slug/file', async (req, reply) => {
    const slug = (req.params as { slug: string }).slug;
    const q = query(req);
    const tagged = q.tag && q.tag !== 'latest' ? fail('NOT_FOUND', `Unknown tag "${q.tag}"`) : undefined;
    const row = versionOr404(slug, q.version ?? tagged);
    const file = store.skillFiles(slug, row.version).find((f) => f.path === q.path);
    if (!file) fail('NOT_FOUND', `File not found: ${q.path ?? ''}`);
    return reply.type(file.content_type).send(store.readBlob(file.sha256));
  });

  app.get('/api/v1/skills/:slug/install', async (req) => {
    const slug = (req.params as { slug: string }).slug;
    const skill = skillOr404(slug);
    if (!skill.latest) {
      return { ok: false, slug, reason: 'archive_version_missing', message: `${slug} has no installable version (all yanked)`, status: 410 };
    }
    const url = new URL('/api/v1/download', `${req.protocol}://${req.host}`);
    url.searchParams.set('slug', slug);
    url.searchParams.set('version', skill.latest);
    return { ok: true, slug, installKind: 'archive', archive: { version: skill.latest, downloadUrl: url.toString() } };
  });

  app.get('/api/v1/resolve', async (req) => {
    const q = query(req);
    const skill = skillOr404(q.slug ?? '');
    const match = q.hash && /^[0-9a-f]{64}$/.test(q.hash) ? store.skillVersionByFingerprint(skill.slug, q.hash) : undefined;
    return { match: match ? { version: match.version } : null, latestVersion: skill.latest ? { version: skill.latest } : null };
  });

  app.get('/api/v1/download', async (req, reply) => {
    const q = query(req);
    const row = versionOr404(q.slug ?? '', q.version);
    const files = store.skillFiles(row.slug, row.version).map((f) => ({ path: f.path, bytes: store.readBlob(f.sha256) }));
    store.countDownload(row.slug);
    if (row.yanked_at !== null) reply.header('x-carapace-yanked', encodeURIComponent(row.yanked_reason ?? 'yanked'));
    return reply
      .type('application/zip')
      .header('content-disposition', `attachment; filename="${row.slug}-${row.version}.zip"`)
      .header('x-skill-fingerprint', row.fingerprint)
      .send(writeZip(files));
  });

  app.post('/api/cli/telemetry/install', async () => ({ ok: true }));

  // ---- ClawHub API: publish --------------------------------------------------

  app.post('/api/v1/skills/-/upload-url', async (req) => {
    const user = authUser(req);
    const body = mustBe<{ path: string; size: number; sha256: string; contentType?: string }>(validateUploadUrl, req.body, 'upload-url');
    try {
      checkSkillFileList([{ path: body.path, size: body.size }].concat(isSkillManifestPath(body.path) ? [] : [{ path: 'SKILL.md', size: 0 }]));
    } catch (err) {
      if (err instanceof SkillFormatError) fail(err.reason === 'file-too-large' ? 'PAYLOAD_TOO_LARGE' : 'INVALID_REQUEST', err.message, { reason: err.reason });
      throw err;
    }
    const ticket = randomBytes(18).toString('base64url');
    store.createUpload({ ticket, user, path: body.path, size: body.size, sha256: body.sha256, content_type: body.contentType ?? 'application/octet-stream' });
    return { uploadUrl: `${req.protocol}://${req.host}/api/v1/uploads/${ticket}`, uploadTicket: ticket };
  });

  // Uploads carry raw bytes of any content type: a scope of their own where
  // every body is a Buffer (the default text/plain parser would decode it).
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_SKILL_FILE_BYTES }, (_req, body, done) => done(null, body));
    scope.post('/api/v1/uploads/:ticket', async (req) => {
      const user = authUser(req);
      const upload = store.getUpload((req.params as { ticket: string }).ticket);
      if (!upload || upload.user !== user) fail('NOT_FOUND', 'Unknown upload ticket');
      const bytes = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      if (bytes.length !== upload.size) fail('INVALID_REQUEST', `upload of ${upload.path} is ${bytes.length} bytes, announced ${upload.size}`);
      if (createHash('sha256').update(bytes).digest('hex') !== upload.sha256) fail('INVALID_REQUEST', `upload of ${upload.path} does not match its announced sha256`);
      store.putBlob(bytes);
      store.markUploadStored(upload.ticket);
      return { storageId: upload.ticket };
    });

    scope.addContentTypeParser('application/gzip', { parseAs: 'buffer', bodyLimit: MAX_PLUGIN_TARBALL_BYTES }, (_req, body, done) => done(null, body));
    scope.post('/api/v1/carapace/plugins', async (req, reply) => {
      const user = authUser(req);
      if (req.headers['content-type'] !== 'application/gzip') fail('INVALID_REQUEST', 'a plugin release is uploaded as application/gzip (.tgz)');
      const result = publishPlugin(user, req.body as Buffer);
      return reply.status(201).send(result);
    });
  });

  app.post('/api/v1/skills', async (req) => {
    const user = authUser(req);
    type PublishBody = { slug: string; displayName: string; ownerHandle?: string; version: string; changelog?: string; files: { path: string; size: number; storageId: string; sha256: string; contentType?: string; uploadTicket?: string }[] };
    const body = mustBe<PublishBody>(validatePublish, req.body, 'publish');
    if (!SKILL_SLUG.test(body.slug)) fail('INVALID_REQUEST', `invalid slug "${body.slug}": lowercase letters, digits and dashes`);
    if (!isSemver(body.version)) fail('INVALID_REQUEST', `version "${body.version}" is not semver`);
    if (body.ownerHandle && body.ownerHandle !== user) fail('FORBIDDEN', `you are @${user}; cannot publish as @${body.ownerHandle}`);
    let manifestPath: string;
    try {
      ({ manifestPath } = checkSkillFileList(body.files));
    } catch (err) {
      if (err instanceof SkillFormatError) fail(err.reason === 'too-large' || err.reason === 'file-too-large' ? 'PAYLOAD_TOO_LARGE' : 'INVALID_REQUEST', err.message, { reason: err.reason });
      throw err;
    }
    const tickets: string[] = [];
    for (const f of body.files) {
      const upload = store.getUpload(f.storageId);
      if (!upload || upload.user !== user || !upload.stored) fail('INVALID_REQUEST', `file ${f.path} was not uploaded (unknown storageId)`);
      if (upload.path !== f.path || upload.sha256 !== f.sha256 || upload.size !== f.size) fail('INVALID_REQUEST', `file ${f.path} does not match what was uploaded`);
      tickets.push(upload.ticket);
    }
    const manifest = body.files.find((f) => f.path === manifestPath)!;
    let summary: string;
    try {
      summary = parseSkillFrontmatter(store.readBlob(manifest.sha256).toString('utf8')).description;
    } catch (err) {
      if (err instanceof SkillFormatError) fail('INVALID_REQUEST', err.message, { reason: err.reason });
      throw err;
    }
    const existing = store.getSkill(body.slug);
    if (existing && existing.owner !== user) fail('FORBIDDEN', `skill "${body.slug}" belongs to @${existing.owner}`);
    if (store.getSkillVersion(body.slug, body.version)) fail('CONFLICT', `${body.slug}@${body.version} is already published; versions are immutable`);
    const files = body.files.map((f) => ({ path: f.path, size: f.size, sha256: f.sha256, content_type: f.contentType ?? 'application/octet-stream' }));
    try {
      const { skillId, versionId } = store.publishSkill({
        slug: body.slug,
        owner: user,
        displayName: body.displayName,
        summary: summary.slice(0, 500),
        version: body.version,
        changelog: body.changelog ?? '',
        fingerprint: skillFingerprint(files),
        files,
        tickets,
      });
      return { ok: true, skillId, versionId, slug: body.slug, version: body.version, status: 'published', publicationStatus: 'published' };
    } catch (err) {
      if (err instanceof RegistryConflict) fail('CONFLICT', err.message);
      throw err;
    }
  });

  const yankSkill = (req: FastifyRequest, reason: string) => {
    const user = authUser(req);
    const { slug, version } = req.params as { slug: string; version: string };
    const skill = skillOr404(slug);
    if (skill.owner !== user) fail('FORBIDDEN', `skill "${slug}" belongs to @${skill.owner}`);
    versionOr404(slug, version);
    store.yankSkillVersion(slug, version, reason);
    return { ok: true, slug, version, reason };
  };
  app.post('/api/v1/skills/:slug/versions/:version/yank', async (req) => yankSkill(req, mustBe<{ reason: string }>(validateYank, req.body, 'yank').reason));
  // clawhub's `delete --version` withdraws a version: here that is a yank (nothing is ever deleted).
  app.delete('/api/v1/skills/:slug/versions/:version', async (req) => {
    yankSkill(req, 'withdrawn by the owner');
    return { ok: true };
  });

  // ---- Carapace plugins: registered keys, signed releases, signed index ----

  app.get('/api/v1/carapace/registry-key', async () => registryPublicKey(key));

  app.put('/api/v1/carapace/keys', async (req) => {
    const user = authUser(req);
    const body = mustBe<{ alg: 'ed25519'; publicKey: string }>(validateKey, req.body, 'key');
    const pub = fromB64(body.publicKey, 32);
    if (!pub) fail('INVALID_REQUEST', 'publicKey must be 32 bytes of base64');
    const keyId = keyIdOf(pub);
    try {
      store.registerKey(user, keyId, body.publicKey);
    } catch (err) {
      if (err instanceof RegistryConflict) fail('CONFLICT', err.message);
      throw err;
    }
    return { ok: true, keyId, user };
  });

  // A publisher's public key, for clients that trust on first use: the client
  // checks that keyIdOf(publicKey) is the keyId the signed index names.
  app.get('/api/v1/carapace/keys/:keyId', async (req) => {
    const { keyId } = req.params as { keyId: string };
    const row = /^[0-9a-f]{16}$/.test(keyId) ? store.getKey(keyId) : undefined;
    if (!row) fail('NOT_FOUND', `no publisher key ${keyId}`);
    return { alg: 'ed25519', keyId: row.key_id, publicKey: row.public_key, user: row.user };
  });

  const publishPlugin = (user: string, tgz: Buffer) => {
    if (!Buffer.isBuffer(tgz) || tgz.length === 0) fail('INVALID_REQUEST', 'empty upload');
    let files;
    try {
      files = readTgz(tgz);
    } catch (err) {
      if (err instanceof ArchiveError) fail(err.reason === 'too-large' ? 'PAYLOAD_TOO_LARGE' : 'INVALID_REQUEST', `archive refused: ${err.message}`, { reason: err.reason });
      throw err;
    }
    const byPath = new Map(files.map((f) => [f.path, f.bytes]));
    const manifestBytes = byPath.get('plugin.json');
    if (!manifestBytes) fail('INVALID_REQUEST', 'the release has no plugin.json at its root', { reason: 'manifest-missing' });
    let manifest: unknown;
    try {
      manifest = JSON.parse(Buffer.from(manifestBytes).toString('utf8'));
    } catch {
      fail('INVALID_REQUEST', 'plugin.json is not valid JSON', { reason: 'manifest-invalid' });
    }
    const keyId = opts.verifier.signerKeyId(manifest);
    if (!keyId) fail('FORBIDDEN', 'plugin.json is unsigned', { reason: 'unsigned' });
    const registered = store.getKey(keyId);
    if (!registered || registered.user !== user) fail('FORBIDDEN', `plugin.json is signed by key ${keyId}, which is not registered to @${user}`, { reason: 'unknown-key' });
    const check = opts.verifier.verifyManifest(manifest, fromB64(registered.public_key, 32)!);
    if (!check.ok) fail(check.reason === 'schema' ? 'INVALID_REQUEST' : 'FORBIDDEN', check.message, { reason: check.reason });
    const m = check.manifest;
    // manifest.md: a scoped id names its publisher; nobody else may publish under it.
    const scope = /^@([^/]+)\//.exec(m.id)?.[1];
    if (scope !== undefined && scope !== user) fail('FORBIDDEN', `${m.id} is in the @${scope} scope; @${user} can publish unscoped names or @${user}/...`, { reason: 'scope-not-owned' });
    for (const [path, digest] of Object.entries(m.files)) {
      const bytes = byPath.get(path);
      if (!bytes) fail('INVALID_REQUEST', `${path} is listed in plugin.json files but missing from the release`, { reason: 'file-missing' });
      const actual = 'sha256-' + createHash('sha256').update(bytes).digest('base64');
      if (actual !== digest) fail('INVALID_REQUEST', `${path} does not match its digest in plugin.json`, { reason: 'file-hash-mismatch' });
    }
    for (const path of byPath.keys()) {
      if (path !== 'plugin.json' && !Object.hasOwn(m.files, path)) fail('INVALID_REQUEST', `${path} is in the release but not listed in plugin.json files`, { reason: 'file-not-listed' });
    }
    const sha256 = store.putBlob(tgz);
    try {
      store.publishPlugin({ name: m.id, owner: user, version: m.version, sha256, keyId: m.keyId, size: tgz.length, manifest: Buffer.from(manifestBytes).toString('utf8') });
    } catch (err) {
      if (err instanceof RegistryConflict) fail('CONFLICT', err.message);
      throw err;
    }
    return { ok: true, name: m.id, version: m.version, sha256, keyId: m.keyId };
  };

  const pluginName = (params: unknown): string => {
    const { scope, name } = params as { scope?: string; name: string };
    return scope ? `${scope}/${name}` : name;
  };

  const pluginIndex = (name: string): PackageIndex => {
    const plugin = store.getPlugin(name);
    if (!plugin) fail('NOT_FOUND', `Plugin not found: ${name}`);
    const versions: PackageIndex['versions'] = {};
    for (const v of store.listPluginVersions(name).sort((a, b) => compareSemver(a.version, b.version))) {
      versions[v.version] = { sha256: v.sha256, keyId: v.key_id, ...(v.yanked_reason !== null ? { yanked: v.yanked_reason } : {}) };
    }
    const t = now();
    return { name, versions, latest: plugin.latest, timestamp: new Date(t).toISOString(), expires: new Date(t + ttl).toISOString() };
  };

  const serveIndex = async (req: FastifyRequest) => signIndex(pluginIndex(pluginName(req.params)), key);
  app.get('/api/v1/carapace/plugins/:name/index', serveIndex);
  app.get('/api/v1/carapace/plugins/:scope/:name/index', serveIndex);

  const serveTarball = async (req: FastifyRequest, reply: FastifyReply) => {
    const { version } = req.params as { version: string };
    const name = pluginName(req.params);
    const row = isSemver(version) ? store.getPluginVersion(name, version) : undefined;
    if (!row) fail('NOT_FOUND', `Release not found: ${name}@${version}`);
    return reply.type('application/gzip').header('x-sha256', row.sha256).send(store.readBlob(row.sha256));
  };
  app.get('/api/v1/carapace/plugins/:name/:version/tarball', serveTarball);
  app.get('/api/v1/carapace/plugins/:scope/:name/:version/tarball', serveTarball);

  const yankPlugin = async (req: FastifyRequest) => {
    const user = authUser(req);
    const reason = mustBe<{ reason: string }>(validateYank, req.body, 'yank').reason;
    const { version } = req.params as { version: string };
    const name = pluginName(req.params);
    const plugin = store.getPlugin(name);
    if (!plugin) fail('NOT_FOUND', `Plugin not found: ${name}`);
    if (plugin.owner !== user) fail('FORBIDDEN', `plugin "${name}" belongs to @${plugin.owner}`);
    if (!store.getPluginVersion(name, version)) fail('NOT_FOUND', `Release not found: ${name}@${version}`);
    store.yankPluginVersion(name, version, reason);
    return { ok: true, name, version, reason };
  };
  app.post('/api/v1/carapace/plugins/:name/:version/yank', yankPlugin);
  app.post('/api/v1/carapace/plugins/:scope/:name/:version/yank', yankPlugin);

  app.get('/healthz', async () => ({ ok: true }));

  return {
    app,
    store,
    key,
    close: async () => {
      await app.close();
      store.close();
    },
  };
}
