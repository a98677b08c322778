// `carapace memory status | index [--force] | search QUERY`: the memory plugin's
// index, worked on directly (offline, no gateway needed). The index file is the
// plugin's own, under $CARAPACE_HOME/plugins/hybrid/data/ (see plugins/memory/hybrid/config.ts).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CliError, UsageError } from '../../errors.ts';
import { ConfigError, loadConfig, agentSettings } from '../../config/config.ts';
import type { Verb, CliIO } from '../main.ts';

const usage = `usage: carapace memory status [--json]
       carapace memory index [--force] [--json]
       carapace memory search QUERY [-k N] [--json]

The long-term memory index over the workspace's MEMORY.md and memory/*.md
(and opted-in session transcripts). "index" brings it up to date (only changed
files are re-read; --force rebuilds from scratch); "search" runs a hybrid
(vector + BM25) query and prints snippets with file:line. Works without a
running gateway. With memory.embedder "local" (the default) the vectors are
lexical (hashed word and character n-grams), not semantic.`;

async function open(io: CliIO) {
  let config;
  try {
    config = loadConfig(io.paths.config).config;
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(`${io.paths.config}: ${err.message}`);
    throw err;
  }
  const lib = await import('../../../plugins/memory/hybrid/config.ts');
  const { MemoryIndex } = await import('../../../plugins/memory/hybrid/memory-index.ts');
  let embedder;
  try {
    const remote = lib.remoteFromSetting(config.memory.embedder, config.providers);
    embedder = lib.makeEmbedder(config.memory.embedder, remote);
  } catch (err) {
    if (err instanceof lib.EmbedderConfigError) throw new CliError(err.message);
    throw err;
  }
  const workspace = agentSettings(config, 'main').workspace ?? io.paths.workspace;
  const dbPath = join(lib.memoryDataDir(io.home), lib.INDEX_FILE);
  const warn = (msg: string, fields?: Record<string, unknown>) => {
    if (!io.json) io.stderr.write(`warning: ${msg}${fields?.reason ? ` (${fields.reason})` : fields?.error ? ` (${fields.error})` : ''}\n`);
  };
  return {
    dbPath,
    index: () => new MemoryIndex({ workspace, dbPath, embedder, hybrid: config.memory.hybrid, sessions: config.memory.sessions === true, log: { info: () => {}, warn } }),
  };
}

export const verb: Verb = {
  usage,
  options: { force: { type: 'boolean' }, k: { type: 'string', short: 'k' } },
  async run(io, args) {
    const [sub, ...rest] = args.positionals;
    if (sub === 'status') {
      if (rest.length) throw new UsageError('status takes no arguments');
      const { dbPath, index } = await open(io);
      if (!existsSync(dbPath)) {
        const s = { dbPath, state: 'none' as const };
        if (io.json) io.emit(s);
        else io.say(`memory: no index yet (${dbPath}); build it with: carapace memory index`);
        return 0;
      }
      const idx = index();
      try {
        const s = idx.status();
        if (io.json) io.emit(s);
        else {
          io.say(`memory index: ${s.state}, ${s.docs} files, ${s.chunks} chunks, ${s.vectors} vectors${s.pendingVectors ? ` (${s.pendingVectors} waiting for the embedder)` : ''}`);
          io.say(`  embedder: ${s.embedder.id ?? 'none (text only)'}${s.embedder.lexical ? ' — lexical hashing, not semantic' : ''}${s.embedder.indexedWith && s.embedder.indexedWith !== s.embedder.id ? `; vectors made with ${s.embedder.indexedWith}, run carapace memory index` : ''}`);
          io.say(`  workspace: ${s.workspace}`);
          io.say(`  file: ${s.dbPath} (${(s.dbBytes / 1024).toFixed(0)} KiB)`);
        }
      } finally {
        await idx.close();
      }
      return 0;
    }
    if (sub === 'index') {
      if (rest.length) throw new UsageError('index takes no arguments');
      const { index } = await open(io);
      const idx = index();
      try {
        const report = await idx.sync({ force: args.values.force === true });
        const s = idx.status();
        if (io.json) io.emit({ ...report, status: s });
        else {
          if (report.rebuilt) io.say(`rebuilt: ${report.rebuilt}`);
          if (report.reembedded) io.say(`embedder changed (${report.reembedded.from} → ${report.reembedded.to}): every chunk re-embedded`);
          io.say(`indexed: ${report.docs.added} added, ${report.docs.updated} updated, ${report.docs.removed} removed, ${report.docs.unchanged} unchanged files; ${report.chunks.inserted} chunks new, ${report.chunks.deleted} dropped; ${report.embedded} embedded, ${report.cacheHits} from cache`);
          io.say(`memory index: ${s.chunks} chunks, ${s.vectors} vectors in ${s.dbPath}`);
          for (const w of report.warnings) io.stderr.write(`warning: ${w}\n`);
        }
      } finally {
        await idx.close();
      }
      return 0;
    }
    if (sub === 'search') {
      const query = rest.join(' ').trim();
      if (!query) throw new UsageError('search needs a QUERY');
      const kText = args.values.k as string | undefined;
      const k = kText === undefined ? 10 : Number(kText);
      if (!Number.isInteger(k) || k < 1 || k > 50) throw new UsageError('-k must be an integer from 1 to 50');
      const { index } = await open(io);
      const idx = index();
      try {
        const res = await idx.search(query, { k });
        if (io.json) io.emit(res);
        else {
          for (const w of res.warnings) io.stderr.write(`warning: ${w}\n`);
          if (res.hits.length === 0) io.say('no memory matched');
          for (const h of res.hits) {
            io.say(`${h.path}:${h.startLine}-${h.endLine}  score ${h.score}`);
            io.say(h.snippet.split('\n').map((l) => `  ${l}`).join('\n'));
          }
        }
      } finally {
        await idx.close();
      }
      return 0;
    }
    throw new UsageError(sub ? `unknown subcommand "${sub}"` : 'which subcommand: status, index or search?');
  },
};
