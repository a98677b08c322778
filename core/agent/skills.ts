// Skills: `<workspace>/skills/<name>/SKILL.md` (and shared ones in
// `$CARAPACE_HOME/skills`), in the OpenClaw / AgentSkills format so ClawHub skills
// load unchanged. Only name and description go into the prompt; the body is read on
// demand through the `skill_read` tool, so a hundred skills cost a few KB of context.
import { accessSync, constants, existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { delimiter, join, sep } from 'node:path';
import { splitFrontmatter } from './frontmatter.ts';

export interface SkillInfo {
  name: string;
  description: string;
  dir: string;
  file: string;
  source: 'workspace' | 'shared';
  eligible: boolean;
  /** Why an ineligible skill was skipped (for `status`). */
  reason?: string;
  emoji?: string;
}

export interface Environment {
  env: Record<string, string | undefined>;
  platform: string;
  hasBin(name: string): boolean;
  /** A Carapace config path (`requires.config`) that is set and truthy. */
  configHas(path: string): boolean;
}

const MAX_SKILL_BYTES = 256 * 1024;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function systemEnvironment(configHas: (path: string) => boolean = () => false): Environment {
  const found = new Map<string, boolean>();
  return {
    env: process.env,
    platform: process.platform,
    configHas,
    hasBin(name) {
      let hit = found.get(name);
      if (hit === undefined) {
        hit = (process.env.PATH ?? '').split(delimiter).some((d) => {
          try {
            accessSync(join(d, name), constants.X_OK);
            return statSync(join(d, name)).isFile();
          } catch {
            return false;
          }
        });
        found.set(name, hit);
      }
      return hit;
    },
  };
}

/** Skills from the given roots, earlier roots winning on a name clash. */
export function discoverSkills(roots: { dir: string; source: SkillInfo['source'] }[], environment: Environment): SkillInfo[] {
  const byName = new Map<string, SkillInfo>();
  for (const root of roots) {
    if (!existsSync(root.dir)) continue;
    let entries: string[];
    try {
      entries = readdirSync(root.dir).sort();
    } catch {
      continue;
    }
    for (const entry of entries) {
      if (entry.startsWith('.')) continue;
      const dir = join(root.dir, entry);
      const file = ['SKILL.md', 'skill.md'].map((f) => join(dir, f)).find((f) => existsSync(f));
      if (!file) continue;
      const skill = loadSkill(dir, file, entry, root.source, environment);
      if (!byName.has(skill.name)) byName.set(skill.name, skill);
    }
  }
  return [...byName.values()];
}

function loadSkill(dir: string, file: string, folder: string, source: SkillInfo['source'], environment: Environment): SkillInfo {
  const base = { dir, file, source, name: folder, description: '' };
  let text: string;
  try {
    if (statSync(file).size > MAX_SKILL_BYTES) return { ...base, eligible: false, reason: `SKILL.md is larger than ${MAX_SKILL_BYTES} bytes` };
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return { ...base, eligible: false, reason: `cannot read SKILL.md: ${(err as Error).message}` };
  }
  const { data } = splitFrontmatter(text);
  const name = typeof data.name === 'string' && data.name.trim() ? data.name.trim() : folder;
  const description = typeof data.description === 'string' ? data.description.replace(/\s+/g, ' ').trim() : '';
  const meta = openclawMeta(data.metadata);
  const skill: SkillInfo = { ...base, name, description, eligible: true, ...(typeof meta.emoji === 'string' ? { emoji: meta.emoji } : {}) };
  const reason = ineligibility(name, description, data, meta, environment);
  return reason ? { ...skill, eligible: false, reason } : skill;
}

/** `metadata.openclaw` (aliases clawdbot, clawdis), or requirements written at the top of `metadata`. */
function openclawMeta(metadata: unknown): Record<string, unknown> {
  if (typeof metadata === 'string') {
    try {
      metadata = JSON.parse(metadata);
    } catch {
      return {};
    }
  }
  if (!isMap(metadata)) return {};
  for (const k of ['openclaw', 'clawdbot', 'clawdis', 'carapace']) if (isMap(metadata[k])) return metadata[k];
  return metadata;
}

function ineligibility(name: string, description: string, data: Record<string, unknown>, meta: Record<string, unknown>, e: Environment): string | null {
  if (!NAME.test(name)) return `invalid skill name "${name.slice(0, 80)}"`;
  if (!description) return 'no description in the frontmatter';
  if (data['disable-model-invocation'] === true) return 'disable-model-invocation is set';
  const os = strings(meta.os);
  if (os.length && !os.includes(e.platform)) return `needs os ${os.join('/')} (this is ${e.platform})`;
  if (meta.always === true) return null;
  const req = isMap(meta.requires) ? meta.requires : {};
  const missingBins = strings(req.bins).filter((b) => !e.hasBin(b));
  if (missingBins.length) return `missing binaries: ${missingBins.join(', ')}`;
  const any = strings(req.anyBins);
  if (any.length && !any.some((b) => e.hasBin(b))) return `needs one of: ${any.join(', ')}`;
  const missingEnv = strings(req.env).filter((v) => !e.env[v]);
  if (missingEnv.length) return `missing environment variables: ${missingEnv.join(', ')}`;
  const missingConfig = strings(req.config).filter((p) => !e.configHas(p));
  if (missingConfig.length) return `missing config: ${missingConfig.join(', ')}`;
  return null;
}

/** The prompt section: one line per eligible skill, descriptions capped. */
export function skillsPrompt(skills: SkillInfo[], maxChars = 24_000): string {
  const eligible = skills.filter((s) => s.eligible);
  if (!eligible.length) return '';
  const lines: string[] = [];
  let used = 0;
  for (const s of eligible) {
    const desc = s.description.length > 300 ? s.description.slice(0, 297) + '...' : s.description;
    const line = `- ${s.name}: ${desc}`;
    if (used + line.length > maxChars) {
      lines.push(`- (${eligible.length - lines.length} more skills not listed: context budget)`);
      break;
    }
    lines.push(line);
    used += line.length + 1;
  }
  return `## Skills\nBefore using a skill, read its instructions with the skill_read tool (input {"name": "<skill>"}); its files can be read the same way with "path".\n${lines.join('\n')}`;
}

export const SKILL_READ_TOOL = {
  name: 'skill_read',
  description: "Read a skill's instructions (SKILL.md) or one of its files. Input: {name, path?}.",
  input: {
    type: 'object',
    properties: { name: { type: 'string', description: 'The skill name' }, path: { type: 'string', description: 'A file inside the skill folder (optional)' } },
    required: ['name'],
    additionalProperties: false,
  },
};

/** The body of an eligible skill, or a file inside its folder (never outside it). */
export function readSkill(skills: SkillInfo[], input: unknown): { content: string; isError?: boolean } {
  const i = isMap(input) ? input : {};
  const skill = skills.find((s) => s.name === i.name);
  if (!skill) return { content: `no skill named ${JSON.stringify(i.name)}; available: ${skills.filter((s) => s.eligible).map((s) => s.name).join(', ')}`, isError: true };
  if (!skill.eligible) return { content: `skill ${skill.name} is not available: ${skill.reason}`, isError: true };
  try {
    if (i.path === undefined || i.path === '' || i.path === 'SKILL.md') return { content: splitFrontmatter(readFileSync(skill.file, 'utf8')).body };
    if (typeof i.path !== 'string') return { content: 'path must be a string', isError: true };
    const root = realpathSync(skill.dir);
    const target = realpathSync(join(skill.dir, i.path));
    if (target !== root && !target.startsWith(root + sep)) return { content: 'path is outside the skill folder', isError: true };
    if (statSync(target).size > MAX_SKILL_BYTES) return { content: `file is larger than ${MAX_SKILL_BYTES} bytes`, isError: true };
    return { content: readFileSync(target, 'utf8') };
  } catch (err) {
    return { content: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, isError: true };
  }
}

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : typeof v === 'string' ? [v] : []);

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
