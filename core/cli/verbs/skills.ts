import { mkdirSync } from 'node:fs';
import { CliError, UsageError } from '../../errors.ts';
import type { Verb, CliIO } from '../main.ts';

const usage = `usage: carapace skills search QUERY [--limit N] [--registry URL]
       carapace skills install SLUG[@VERSION] [--force] [--registry URL]
       carapace skills remove SLUG
       carapace skills list
       carapace skills verify [SLUG]

Skills from a ClawHub-compatible registry (default https://clawhub.ai, or
CLAWHUB_REGISTRY, or --registry URL such as a \`carapace registry serve\`) go into
$CARAPACE_HOME/workspace/skills/<slug>/, tracked in workspace/.clawhub/lock.json
(the clawhub CLI's own layout) with the sha256 of every file. \`verify\` reports
files changed, missing or added since install, and exits 1 if any are.`;

function registryOf(values: Record<string, unknown>): string {
  const raw = (values.registry as string | undefined) ?? process.env.CLAWHUB_REGISTRY ?? process.env.CLAWDHUB_REGISTRY;
  if (raw === undefined) return 'https://clawhub.ai';
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`--registry must be a URL, not "${raw}"`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new UsageError('--registry must be an http(s) URL');
  return raw.replace(/\/+$/, '');
}

async function audit(io: CliIO, action: string, target: string, data: Record<string, unknown>): Promise<void> {
  const { openDb } = await import('../../store/db.ts');
  const { createAuditLog } = await import('../../audit.ts');
  const { ensureHome } = await import('../../home.ts');
  ensureHome(io.paths);
  const db = openDb(io.paths.db);
  try {
    createAuditLog(db).append({ actor: 'cli:owner', action, target, data });
  } finally {
    db.close();
  }
}

export const verb: Verb = {
  usage,
  options: {
    registry: { type: 'string' },
    force: { type: 'boolean' },
    limit: { type: 'string' },
  },
  async run(io, { positionals, values }) {
    const [sub, ...rest] = positionals;
    const ws = await import('../../skills/workspace-skills.ts');
    const { clawHubClient, RegistryRequestError } = await import('../../skills/clawhub-client.ts');
    const workspace = io.paths.workspace;
    const wrap = async <T>(fn: () => Promise<T> | T): Promise<T> => {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof ws.SkillInstallError) throw new CliError(err.message);
        if (err instanceof RegistryRequestError) throw new CliError(err.status ? `registry answered ${err.status}: ${err.message}` : err.message);
        throw err;
      }
    };

    switch (sub) {
      case 'search': {
        if (rest.length === 0) throw new UsageError('search needs a QUERY');
        const limit = values.limit === undefined ? 25 : Number(values.limit);
        if (!Number.isInteger(limit) || limit < 1 || limit > 200) throw new UsageError('--limit must be 1..200');
        const client = clawHubClient(registryOf(values));
        const results = await wrap(() => client.search(rest.join(' '), limit));
        if (io.json) io.emit({ registry: client.registry, results });
        else if (results.length === 0) io.say('no skills found');
        else for (const r of results) io.say(`${r.slug}${r.version ? ` v${r.version}` : ''}  ${r.owner ? `@${r.owner}` : ''}  ${r.summary ?? r.displayName}`);
        return 0;
      }
      case 'install': {
        if (rest.length !== 1) throw new UsageError('install takes one SLUG[@VERSION]');
        const spec = await wrap(() => ws.parseSkillSpec(rest[0]!));
        const client = clawHubClient(registryOf(values));
        mkdirSync(workspace, { recursive: true, mode: 0o700 });
        let result;
        try {
          result = await wrap(() => ws.installSkill(client, workspace, spec, { force: values.force === true }));
        } catch (err) {
          await audit(io, 'skills.install.refused', spec.slug, { registry: client.registry, version: spec.version ?? null, reason: (err as Error).message });
          throw err;
        }
        await audit(io, 'skills.install', spec.slug, { registry: client.registry, version: result.version, fingerprint: result.fingerprint, replaced: result.replaced });
        if (result.yanked) io.stderr.write(`carapace skills: warning: ${spec.slug}@${result.version} is yanked: ${result.yanked}\n`);
        if (io.json) io.emit(result);
        else io.say(`installed ${result.slug} v${result.version} -> ${result.dir} (${result.files} files)`);
        return 0;
      }
      case 'remove': {
        if (rest.length !== 1) throw new UsageError('remove takes one SLUG');
        const slug = rest[0]!;
        const res = await wrap(() => ws.removeSkill(workspace, slug));
        await audit(io, 'skills.remove', slug, res);
        if (io.json) io.emit({ slug, ...res });
        else io.say(`removed ${slug}`);
        return 0;
      }
      case 'list': {
        if (rest.length !== 0) throw new UsageError('list takes no arguments');
        const skills = await wrap(() => ws.listSkills(workspace));
        if (io.json) io.emit({ workspace, skills });
        else if (skills.length === 0) io.say('no skills installed');
        else for (const s of skills) io.say(`${s.slug}  ${s.version ?? '-'}${s.tracked ? '' : '  (not tracked)'}`);
        return 0;
      }
      case 'verify': {
        if (rest.length > 1) throw new UsageError('verify takes at most one SLUG');
        const reports = await wrap(() => ws.verifySkills(workspace, rest[0]));
        const ok = reports.every((r) => r.ok);
        if (io.json) io.emit({ ok, skills: reports });
        else {
          if (reports.length === 0) io.say('no skills installed');
          for (const r of reports) {
            if (r.ok) io.say(`${r.slug}: ok`);
            else {
              const parts = [r.problem, r.modified.length ? `modified: ${r.modified.join(', ')}` : '', r.missing.length ? `missing: ${r.missing.join(', ')}` : '', r.added.length ? `added: ${r.added.join(', ')}` : ''];
              io.say(`${r.slug}: CHANGED ${parts.filter(Boolean).join('; ')}`);
            }
          }
        }
        if (!ok) io.stderr.write(`carapace skills: ${reports.filter((r) => !r.ok).map((r) => r.slug).join(', ')} changed since install\n`);
        return ok ? 0 : 1;
      }
      default:
        throw new UsageError(sub === undefined ? 'skills needs a sub-verb' : `unknown sub-verb "${sub}"`);
    }
  },
};
