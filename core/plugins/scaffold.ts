// `carapace plugin init KIND NAME`: a typed plugin project a new author can
// edit, test and pack without installing anything. Types come from
// `carapace/plugin` (core/plugin-api.ts), resolved by a tsconfig `paths`
// entry pointing at this Carapace install — no network, no node_modules in the
// project; `import type` is erased, so nothing of it exists at run time.

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, type PluginKind } from './manifest.ts';

export const PLUGIN_NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;

function toolName(name: string): string {
  const base = name.replace(/-/g, '_');
  return /^[a-zA-Z]/.test(base) ? base : `t_${base}`;
}

function manifestTemplate(kind: PluginKind, name: string): Record<string, unknown> {
  return {
    schema: 'carapace.plugin/v1',
    id: name,
    name,
    version: '0.1.0',
    kind,
    description: `${name} (edit me)`,
    publisher: { name: 'your-name' },
    runtime: 'isolate',
    entry: 'index.js',
    files: {},
    engines: { carapace: '>=0.1.0' },
    // Ask for nothing you do not need: the user sees and approves this list.
    // e.g. "net": ["api.example.com:443"], "secrets": { "EXAMPLE_KEY": ["api.example.com"] }
    permissions: {},
    limits: { memoryMb: 32, callTimeoutMs: 5000 },
    config: { type: 'object', properties: {}, additionalProperties: false },
    provides: {},
  };
}

const TOOL_SOURCE = (tool: string) => `// A Carapace tool plugin. It runs in an isolate: no require, no process, no
// fetch, no timers of its own — only the \`carapace\` object the kernel injects,
// limited to the permissions in plugin.json. \`carapace plugin pack\` turns this
// file into dist/index.js (types stripped, one script, no imports at run time).

import type { CapabilityApi, ToolContext, ToolPlugin, ToolResult } from 'carapace/plugin';

// The kernel injects this global; declared here for the type checker only.
declare const carapace: CapabilityApi;

interface Input {
  text: string;
}

function countWords(text: string): number {
  return text.split(/\\s+/).filter(Boolean).length;
}

export const tools: ToolPlugin['tools'] = [
  {
    name: '${tool}',
    description: 'Count the words in a text.',
    input: {
      type: 'object',
      properties: { text: { type: 'string', description: 'the text to count' } },
      required: ['text'],
      additionalProperties: false,
    },
    async run(raw: unknown, ctx: ToolContext): Promise<ToolResult> {
      const input = raw as Input;
      const words = countWords(input.text);
      if (typeof carapace !== 'undefined') carapace.log.info('counted', { words, session: ctx.sessionKey });
      return { content: \`\${words} words\`, data: { words } };
    },
  },
];
`;

const TOOL_TEST = (tool: string) => `import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tools } from '../src/index.ts';

// The tool's logic, run directly by Node (types stripped); \`carapace plugin pack\`
// builds what the sandbox runs from the same file.

const tool = tools.find((t) => t.name === '${tool}')!;
const ctx = { agentId: 'main', sessionKey: 'agent:main:test' };

test('${tool} counts the words of a text', async () => {
  const r = await tool.run({ text: 'the quick  brown fox' }, ctx);
  assert.deepEqual(typeof r === 'string' ? r : r.data, { words: 4 });
});

test('${tool} counts an empty text as zero words', async () => {
  const r = await tool.run({ text: '   ' }, ctx);
  assert.equal(typeof r === 'string' ? r : r.content, '0 words');
});
`;

const OTHER_SOURCE: Record<Exclude<PluginKind, 'tool'>, string> = {
  provider: `import type { CompletionEvent, CompletionRequest, CompletionResult, ModelInfo, ProviderPlugin } from 'carapace/plugin';

export async function models(): Promise<ModelInfo[]> {
  return [];
}

export async function complete(request: CompletionRequest, onEvent: (event: CompletionEvent) => void): Promise<CompletionResult> {
  throw new Error('this provider has no model API yet: call it with carapace.net.fetch and return the assistant message');
}

export const _check: ProviderPlugin = { models, complete };
`,
  channel: `import type { ChannelPlugin, OutboundMessage } from 'carapace/plugin';

export async function start(ctx: { config: Record<string, unknown> }): Promise<void> {}

export async function send(outbound: OutboundMessage): Promise<{ platformMessageId?: string }> {
  return {};
}

export async function stop(): Promise<void> {}

export const _check: ChannelPlugin = { start, send, stop };
`,
  memory: `import type { MemoryDoc, MemoryHit, MemoryPlugin } from 'carapace/plugin';

export async function index(doc: MemoryDoc): Promise<{ chunks: number }> {
  return { chunks: 0 };
}

export async function search(query: string, opts?: { k?: number }): Promise<MemoryHit[]> {
  return [];
}

export async function forget(id: string): Promise<void> {}

export const _check: MemoryPlugin = { index, search, forget };
`,
};

const OTHER_TEST = (kind: string) => `import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as plugin from '../src/index.ts';

test('the ${kind} plugin exports its hooks', () => {
  assert.ok(Object.keys(plugin).length > 0);
});
`;

export interface ScaffoldResult {
  dir: string;
  files: string[];
}

/** Write a new plugin project into `dir` (which must not exist yet). */
export function scaffoldPlugin(kind: PluginKind, name: string, dir: string): ScaffoldResult {
  if (!PLUGIN_NAME.test(name)) throw new Error(`plugin name "${name}" must be lowercase letters, digits and dashes (up to 64)`);
  if (existsSync(dir)) throw new Error(`${dir} already exists; pick another name or folder`);
  const tool = toolName(name);
  const files: Record<string, string> = {
    'plugin.json': JSON.stringify(manifestTemplate(kind, name), null, 2) + '\n',
    'src/index.ts': kind === 'tool' ? TOOL_SOURCE(tool) : OTHER_SOURCE[kind],
    'test/index.test.ts': kind === 'tool' ? TOOL_TEST(tool) : OTHER_TEST(kind),
    'package.json':
      JSON.stringify(
        {
          name,
          version: '0.1.0',
          private: true,
          type: 'module',
          scripts: { test: "node --test 'test/**/*.test.ts'", pack: 'carapace plugin pack', typecheck: 'tsc --noEmit -p .' },
        },
        null,
        2,
      ) + '\n',
    'tsconfig.json':
      JSON.stringify(
        {
          compilerOptions: {
            target: 'es2024',
            module: 'nodenext',
            moduleResolution: 'nodenext',
            lib: ['es2024', 'dom'], // dom: URL, Request, Response in the API's types
            types: [],
            strict: true,
            noEmit: true,
            allowImportingTsExtensions: true,
            erasableSyntaxOnly: true,
            verbatimModuleSyntax: true,
            skipLibCheck: true,
            // The plugin API types of the Carapace that scaffolded this project.
            paths: { 'carapace/plugin': [join(REPO_ROOT, 'core', 'plugin-api.ts')] },
          },
          include: ['src'],
        },
        null,
        2,
      ) + '\n',
    '.gitignore': 'dist/\n',
  };
  for (const [rel, text] of Object.entries(files)) {
    const path = join(dir, rel);
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, text, { flag: 'wx' });
  }
  return { dir, files: Object.keys(files) };
}
