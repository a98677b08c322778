// `carapace plugin pack`: src/index.ts → dist/index.js (one script, types
// stripped by node:module's stripTypeScriptTypes, no imports at run time) and
// dist/plugin.json with its `files` digests and the tools the code declares.
// One source file keeps this free of a bundler; a plugin that needs several
// files or npm packages must inline them (the isolate has no module loader).
//
// Output: one ES module whose only export is a trailing `export {…}` — what
// both the isolate (compiled as a module, no imports allowed) and the worker
// runtime load.

import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { stripTypeScriptTypes } from 'node:module';
import { join } from 'node:path';
import { Script, createContext } from 'node:vm';
import { fileDigest, parseManifest, type Manifest } from './manifest.ts';
import type { ToolDef } from '../plugin-api.ts';

export class PackError extends Error {}

function stripTypes(source: string, file: string): string {
  // The API is marked experimental; its warning is noise for an author's terminal.
  const emit = process.emitWarning;
  process.emitWarning = (() => {}) as typeof process.emitWarning;
  try {
    return stripTypeScriptTypes(source, { mode: 'strip', sourceUrl: file });
  } catch (err) {
    throw new PackError(`${file}: ${(err as Error).message}`);
  } finally {
    process.emitWarning = emit;
  }
}

const EXPORT_DECL = /^export\s+(async\s+function\s*\*?|function\s*\*?|const|let|var|class)\s+([A-Za-z_$][\w$]*)/gm;
const EXPORT_LIST = /^export\s*\{([^}]*)\}\s*;?/gm;

/** ES exports of a single top-level script → its declarations plus the names to export. */
export function rewriteExports(code: string, file: string): { body: string; names: Map<string, string> } {
  if (/^\s*import\s*[\w{*"']/m.test(code) || /\bimport\s*\(/.test(code) || /\brequire\s*\(/.test(code)) {
    throw new PackError(`${file} imports a module at run time; a plugin is one file with no imports (only \`import type\`, which is erased)`);
  }
  if (/^export\s+default\b/m.test(code)) throw new PackError(`${file}: use named exports (tools, start, send, ...), not export default`);
  if (/^export\s*\*/m.test(code)) throw new PackError(`${file}: export * re-exports a module; a plugin is one file`);
  const names = new Map<string, string>();
  let body = code.replace(EXPORT_DECL, (_m, what: string, name: string) => {
    names.set(name, name);
    return `${what} ${name}`;
  });
  body = body.replace(EXPORT_LIST, (_m, list: string) => {
    for (const part of list.split(',').map((s) => s.trim()).filter(Boolean)) {
      const [local, exported] = part.split(/\s+as\s+/).map((s) => s.trim()) as [string, string | undefined];
      names.set(exported ?? local, local);
    }
    return '';
  });
  if (/^export\b/m.test(body)) throw new PackError(`${file}: an export form pack does not understand; use export const/function or export { a, b }`);
  if (names.size === 0) throw new PackError(`${file} exports nothing; a plugin exports its hooks (a tool plugin: export const tools = [...])`);
  return { body, names };
}

function trailer(names: Map<string, string>): string {
  return `\nexport { ${[...names].map(([exported, local]) => (exported === local ? local : `${local} as ${exported}`)).join(', ')} };\n`;
}

/** Run the built code once in an empty context to read the tool declarations it exports. */
function declaredTools(body: string, names: Map<string, string>, file: string): ToolDef[] | undefined {
  const local = names.get('tools');
  if (!local) return undefined;
  let tools: unknown;
  try {
    // The module body has no exports left; a function wrapper hands back what `tools` holds.
    tools = new Script(`(function () {${body}\nreturn ${local};\n})()`, { filename: file }).runInContext(createContext({}), { timeout: 1000 });
  } catch (err) {
    throw new PackError(`${file} fails when loaded: ${(err as Error).message}`);
  }
  if (!Array.isArray(tools)) throw new PackError(`${file}: tools must be an array`);
  return tools.map((t: { name?: unknown; description?: unknown; input?: unknown; run?: unknown }, i) => {
    if (typeof t?.name !== 'string' || typeof t.run !== 'function') throw new PackError(`${file}: tools[${i}] needs a name and a run function`);
    return { name: t.name, description: String(t.description ?? ''), input: (t.input as Record<string, unknown>) ?? { type: 'object' } };
  });
}

export interface PackResult {
  dist: string;
  manifest: Manifest;
  bytes: number;
  tools: string[];
}

/**
 * Build `dist/` of a plugin project: the script and the manifest (unsigned;
 * `carapace plugin sign` signs it). dist/ is rebuilt from scratch each time so
 * no stale file can slip into a release.
 */
export function packPlugin(projectDir: string): PackResult {
  const manifestPath = join(projectDir, 'plugin.json');
  if (!existsSync(manifestPath)) throw new PackError(`${projectDir} has no plugin.json; run carapace plugin init first, or pass --dir`);
  let template: Record<string, unknown>;
  try {
    template = JSON.parse(readFileSync(manifestPath, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new PackError(`plugin.json is not valid JSON: ${(err as Error).message}`);
  }
  const srcDir = join(projectDir, 'src');
  const entrySrc = join(srcDir, 'index.ts');
  if (!existsSync(entrySrc)) throw new PackError(`${entrySrc} is missing; the plugin's source is src/index.ts`);
  const others = readdirSync(srcDir).filter((f) => f !== 'index.ts' && /\.(m?[jt]s)$/.test(f));
  if (others.length) throw new PackError(`src/ holds ${others.join(', ')} besides index.ts; pack builds one file with no run-time imports — move that code into src/index.ts`);
  const entry = typeof template.entry === 'string' ? template.entry : 'index.js';
  const { body, names } = rewriteExports(stripTypes(readFileSync(entrySrc, 'utf8'), 'src/index.ts'), 'src/index.ts');
  const clean = body.replace(/[ \t]+$/gm, '').replace(/\n{3,}/g, '\n\n');
  const code = `// Built by carapace plugin pack from src/index.ts.\n${clean}${trailer(names)}`;
  const tools = declaredTools(clean, names, entry);

  const { signature: _sig, ...rest } = template;
  const provides = { ...((rest.provides as Record<string, unknown>) ?? {}) };
  if (tools) provides.tools = tools;
  const manifestObj: Record<string, unknown> = { ...rest, entry, files: { [entry]: fileDigest(Buffer.from(code)) }, provides };
  // publisher.keyId is set by sign, from the key that actually signs.
  const publisher = manifestObj.publisher as { name?: string; keyId?: string } | undefined;
  if (publisher?.keyId) manifestObj.publisher = { ...publisher, keyId: undefined };
  let manifest: Manifest;
  try {
    manifest = parseManifest(JSON.stringify(manifestObj));
  } catch (err) {
    throw new PackError((err as Error).message);
  }
  const dist = join(projectDir, 'dist');
  rmSync(dist, { recursive: true, force: true });
  mkdirSync(dist, { recursive: true });
  writeFileSync(join(dist, entry), code);
  writeFileSync(join(dist, 'plugin.json'), JSON.stringify(manifest, null, 2) + '\n');
  return { dist, manifest, bytes: Buffer.byteLength(code), tools: (tools ?? []).map((t) => t.name) };
}
