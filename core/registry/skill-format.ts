import { ArchiveError, safeRelativePath } from './archive-path.ts';

// What a publishable skill is (registry.md: "a folder with SKILL.md (+ files),
// exactly as ClawHub has it"), checked the same way by the server and the client.

export const SKILL_SLUG = /^[a-z0-9][a-z0-9-]{0,63}$/;
export const MAX_SKILL_FILE_BYTES = 10 * 1024 * 1024; // clawhub's own publish caps
export const MAX_SKILL_TOTAL_BYTES = 50 * 1024 * 1024;
export const MAX_SKILL_FILES = 1000;

export interface SkillFrontmatter {
  name: string;
  description: string;
  fields: Record<string, string>;
}

export class SkillFormatError extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.name = 'SkillFormatError';
    this.reason = reason;
  }
}

/** The root manifest file of a skill (clawhub accepts skill.md in any case, and skills.md). */
export function isSkillManifestPath(path: string): boolean {
  const lower = path.toLowerCase();
  return lower === 'skill.md' || lower === 'skills.md';
}

function unquote(value: string): string {
  const v = value.trim();
  if (v.length >= 2 && ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'")))) return v.slice(1, -1);
  return v;
}

/**
 * Parse the YAML frontmatter of SKILL.md far enough to check it: a `---` fence
 * at the top, top-level `key: value` lines (indented lines continue the previous
 * key), a closing fence, and non-empty `name` and `description`.
 */
export function parseSkillFrontmatter(text: string): SkillFrontmatter {
  const body = text.startsWith('\ufeff') ? text.slice(1) : text;
  const lines = body.split(/\r?\n/);
  if (lines[0]?.trim() !== '---') throw new SkillFormatError('frontmatter-missing', 'SKILL.md must start with a --- frontmatter block');
  const end = lines.findIndex((l, i) => i > 0 && l.trim() === '---');
  if (end < 0) throw new SkillFormatError('frontmatter-unclosed', 'SKILL.md frontmatter has no closing ---');
  const fields: Record<string, string> = {};
  let last: string | null = null;
  for (const line of lines.slice(1, end)) {
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    if (/^\s/.test(line)) {
      if (last === null) throw new SkillFormatError('frontmatter-invalid', `SKILL.md frontmatter: indented line without a key: ${line.trim().slice(0, 40)}`);
      fields[last] = (fields[last] ? fields[last] + ' ' : '') + line.trim();
      continue;
    }
    const m = /^([A-Za-z_][A-Za-z0-9_-]*)\s*:(.*)$/.exec(line);
    if (!m) throw new SkillFormatError('frontmatter-invalid', `SKILL.md frontmatter: not a "key: value" line: ${line.slice(0, 40)}`);
    const key = m[1]!;
    if (Object.hasOwn(fields, key)) throw new SkillFormatError('frontmatter-invalid', `SKILL.md frontmatter: duplicate key "${key}"`);
    const value = m[2]!.trim();
    fields[key] = value === '|' || value === '>' ? '' : unquote(value);
    last = key;
  }
  const name = fields.name?.trim() ?? '';
  const description = fields.description?.trim() ?? '';
  if (!name) throw new SkillFormatError('frontmatter-name', 'SKILL.md frontmatter needs a non-empty "name"');
  if (!description) throw new SkillFormatError('frontmatter-description', 'SKILL.md frontmatter needs a non-empty "description"');
  return { name, description, fields };
}

export interface SkillFileEntry {
  path: string;
  size: number;
}

/** Check a skill's file list: safe paths, no dot-segments (clawhub ignores them), caps, a root SKILL.md. */
export function checkSkillFileList(files: readonly SkillFileEntry[]): { manifestPath: string } {
  if (files.length === 0) throw new SkillFormatError('no-files', 'a skill needs at least SKILL.md');
  if (files.length > MAX_SKILL_FILES) throw new SkillFormatError('too-many-files', `a skill may have at most ${MAX_SKILL_FILES} files`);
  const seen = new Set<string>();
  let total = 0;
  let manifestPath: string | null = null;
  for (const f of files) {
    let path: string;
    try {
      path = safeRelativePath(f.path);
    } catch (err) {
      if (err instanceof ArchiveError) throw new SkillFormatError(err.reason, err.message);
      throw err;
    }
    if (path !== f.path) throw new SkillFormatError('bad-path', `path must be normalised: ${f.path}`);
    if (path.split('/').some((s) => s.startsWith('.'))) throw new SkillFormatError('dot-path', `hidden path refused: ${path}`);
    const key = path.toLowerCase();
    if (seen.has(key)) throw new SkillFormatError('duplicate', `duplicate file: ${path}`);
    seen.add(key);
    if (!Number.isSafeInteger(f.size) || f.size < 0) throw new SkillFormatError('bad-size', `bad size for ${path}`);
    if (f.size > MAX_SKILL_FILE_BYTES) throw new SkillFormatError('file-too-large', `${path} is larger than ${MAX_SKILL_FILE_BYTES} bytes`);
    total += f.size;
    if (isSkillManifestPath(path)) manifestPath = path;
  }
  if (total > MAX_SKILL_TOTAL_BYTES) throw new SkillFormatError('too-large', `a skill may total at most ${MAX_SKILL_TOTAL_BYTES} bytes`);
  if (!manifestPath) throw new SkillFormatError('skill-md-missing', 'SKILL.md is required at the root of the skill');
  return { manifestPath };
}
