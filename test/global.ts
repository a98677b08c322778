// node --test --test-global-setup: clears the recorded outputs before the run and,
// after every test file has finished, sweeps them for the test secrets' values.
// A value found anywhere fails the whole run (a thrown teardown exits 1).
import { rmSync, readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { OUTPUTS_DIR } from './helpers/artifacts.ts';
import { TEST_SECRETS } from './helpers/test-secrets.ts';

export function globalSetup(): void {
  rmSync(OUTPUTS_DIR, { recursive: true, force: true });
}

export function globalTeardown(): void {
  if (!existsSync(OUTPUTS_DIR)) throw new Error('secret-leak sweep: nothing was recorded — are the test helpers recording?');
  const files = readdirSync(OUTPUTS_DIR);
  const leaks: string[] = [];
  let bytes = 0;
  for (const f of files) {
    const text = readFileSync(join(OUTPUTS_DIR, f), 'utf8');
    bytes += text.length;
    for (const [name, value] of Object.entries(TEST_SECRETS)) {
      const at = text.indexOf(value);
      if (at >= 0) leaks.push(`${name} in ${f} near: ${text.slice(Math.max(0, at - 120), at).split('\n').slice(-2).join(' | ')}`);
    }
  }
  process.stdout.write(`secret-leak sweep: ${files.length} output files, ${bytes} bytes, ${leaks.length} leaks\n`);
  if (leaks.length) throw new Error(`secret values leaked into outputs:\n${leaks.join('\n')}`);
}
