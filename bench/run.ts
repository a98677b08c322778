// `npm run bench [-- NAME...]`: runs bench/<name>.bench.ts files, each in its own
// process so one bench's heap and handles cannot skew the next.
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
const all = readdirSync(dir).filter((f) => f.endsWith('.bench.ts')).map((f) => f.slice(0, -'.bench.ts'.length)).sort();
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const extra = process.argv.slice(2).filter((a) => a.startsWith('-'));
const unknown = wanted.filter((w) => !all.includes(w));
if (unknown.length) {
  process.stderr.write(`unknown bench: ${unknown.join(', ')} (have: ${all.join(', ')})\n`);
  process.exit(2);
}
let failed = 0;
for (const name of wanted.length ? wanted : all) {
  const res = spawnSync(process.execPath, ['--expose-gc', `${dir}${name}.bench.ts`, ...extra], { stdio: 'inherit', timeout: 120_000 });
  if (res.status !== 0) {
    failed++;
    process.stderr.write(`bench ${name} failed (${res.status ?? res.signal})\n`);
  }
}
process.exit(failed ? 1 : 0);
