// The `files` tools (isolate runtime). Reaches the disk only through the
// injected `carapace.fs`, whose kernel side resolves paths (symlinks included)
// inside the granted workspace. The tool refuses bad paths itself too, so a
// mistake in either layer alone does not open the host's files.

const ROOT = '$WORKSPACE';
const MAX_READ_CHARS = 256 * 1024;
const MAX_WRITE_CHARS = 1024 * 1024;

function cap() {
  return globalThis.carapace;
}

class Refused extends Error {}

/** A workspace-relative path, normalised, or a Refused naming why not. */
export function workspacePath(input) {
  if (typeof input !== 'string' || input.length === 0) throw new Refused('path must be a non-empty string');
  if (input.length > 1024) throw new Refused('path is too long');
  if (input.includes('\0')) throw new Refused('path contains a NUL byte');
  if (input.includes('\\')) throw new Refused('path contains a backslash; use "/"');
  if (input.startsWith('/') || /^[A-Za-z]:/.test(input)) throw new Refused(`"${input}" is absolute; give a path relative to the workspace`);
  if (input.startsWith('~')) throw new Refused(`"${input}" uses "~"; give a path relative to the workspace`);
  if (input.startsWith('$')) throw new Refused(`"${input}" names a root; give a path relative to the workspace`);
  const segs = input.split('/').filter((s) => s !== '' && s !== '.');
  if (segs.some((s) => s === '..')) throw new Refused(`"${input}" contains ".."; paths must stay inside the workspace`);
  return segs.length === 0 ? ROOT : `${ROOT}/${segs.join('/')}`;
}

function ok(content, data) {
  return { content, data };
}
function err(content) {
  return { content, isError: true };
}

async function guarded(fn) {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof Refused) return err(`refused: ${e.message}`);
    return err(`failed: ${e && e.message ? e.message : String(e)}`);
  }
}

const pathProp = { type: 'string', description: 'path relative to the workspace' };

export const tools = [
  {
    name: 'files_read',
    description: 'Read a text file from the workspace.',
    input: { type: 'object', properties: { path: pathProp }, required: ['path'], additionalProperties: false },
    run: (input) =>
      guarded(async () => {
        const text = await cap().fs.read(workspacePath(input?.path));
        if (text.length > MAX_READ_CHARS) return ok(text.slice(0, MAX_READ_CHARS) + `\n[truncated: ${text.length} chars]`, { truncated: true });
        return ok(text);
      }),
  },
  {
    name: 'files_write',
    description: 'Create or overwrite a text file in the workspace.',
    input: {
      type: 'object',
      properties: { path: pathProp, content: { type: 'string' } },
      required: ['path', 'content'],
      additionalProperties: false,
    },
    run: (input) =>
      guarded(async () => {
        const p = workspacePath(input?.path);
        if (p === ROOT) throw new Refused('cannot write to the workspace directory itself');
        if (typeof input.content !== 'string') throw new Refused('content must be a string');
        if (input.content.length > MAX_WRITE_CHARS) throw new Refused(`content is larger than ${MAX_WRITE_CHARS} chars`);
        await cap().fs.write(p, input.content);
        return ok(`wrote ${input.content.length} chars to ${input.path}`);
      }),
  },
  {
    name: 'files_list',
    description: 'List a directory of the workspace.',
    input: { type: 'object', properties: { path: { ...pathProp, default: '.' } }, additionalProperties: false },
    run: (input) =>
      guarded(async () => {
        const entries = await cap().fs.list(workspacePath(input?.path ?? '.'));
        const lines = entries.map((e) => (e.type === 'dir' ? `${e.name}/` : e.name)).sort();
        return ok(lines.length ? lines.join('\n') : '(empty)', { entries });
      }),
  },
  {
    name: 'files_patch',
    description: 'Replace an exact piece of text in a workspace file. `find` must occur exactly once unless `all` is true.',
    input: {
      type: 'object',
      properties: { path: pathProp, find: { type: 'string', minLength: 1 }, replace: { type: 'string' }, all: { type: 'boolean' } },
      required: ['path', 'find', 'replace'],
      additionalProperties: false,
    },
    run: (input) =>
      guarded(async () => {
        const p = workspacePath(input?.path);
        if (typeof input.find !== 'string' || input.find === '') throw new Refused('find must be a non-empty string');
        if (typeof input.replace !== 'string') throw new Refused('replace must be a string');
        const text = await cap().fs.read(p);
        const count = text.split(input.find).length - 1;
        if (count === 0) return err(`not patched: the text to find does not occur in ${input.path}`);
        if (count > 1 && !input.all) return err(`not patched: the text to find occurs ${count} times in ${input.path}; make it unique or pass all: true`);
        const next = input.all ? text.split(input.find).join(input.replace) : text.replace(input.find, () => input.replace);
        if (next.length > MAX_WRITE_CHARS) throw new Refused(`the patched file would be larger than ${MAX_WRITE_CHARS} chars`);
        await cap().fs.write(p, next);
        return ok(`patched ${count} occurrence${count === 1 ? '' : 's'} in ${input.path}`);
      }),
  },
];
