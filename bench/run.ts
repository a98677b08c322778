// `npm run bench [-- NAME...]`: runs bench/<name>.bench.ts files, each in its own
// process so one bench's heap and handles cannot skew the next.
// Options go to every bench: `--peer openclaw` (bench/startup measures OpenClaw too).
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const dir = fileURLToPath(new URL('.', import.meta.url));
const all = readdirSync(dir).filter((f) => f.endsWith('.bench.ts')).map((f) => f.slice(0, -'.bench.ts'.length)).sort();
const { values, positionals: wanted } = parseArgs({ options: { peer: { type: 'string' } }, allowPositionals: true });
const extra = values.peer ? [`--peer=${values.peer}`] : [];
const unknown = wanted.filter((w) => !all.includes(w));
if (unknown.length) {
  process.stderr.write(`unknown bench: ${unknown.join(', ')} (have: ${all.join(', ')})\n`);
  process.exit(2);
}
let failed = 0;
for (const name of wanted.length ? wanted : all) {
  // A peer is installed from npm and started a few times: minutes, not seconds.
  const res = spawnSync(process.execPath, ['--expose-gc', `${dir}${name}.bench.ts`, ...extra], { stdio: 'inherit', timeout: values.peer ? 900_000 : 120_000 });
  if (res.status !== 0) {
    failed++;
    process.stderr.write(`bench ${name} failed (${res.status ?? res.signal})\n`);
  }
}
process.exit(failed ? 1 : 0);
