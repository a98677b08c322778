// What the suite produced, kept for the secret-leak sweep in test/global.ts:
// every CLI run's and gateway's output, and each temp home's logs and audit rows.
import { appendFileSync, mkdirSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const OUTPUTS_DIR = fileURLToPath(new URL('../../test-artifacts/outputs/', import.meta.url));

export function record(label: string, text: string): void {
  if (!text) return;
  mkdirSync(OUTPUTS_DIR, { recursive: true });
  appendFileSync(join(OUTPUTS_DIR, `${process.pid}.log`), `### ${label}\n${text}\n`);
}

/** Keep a home's log files and audit rows before it is deleted. */
export function recordHome(dir: string): void {
  const logs = join(dir, 'logs');
  if (existsSync(logs)) for (const f of readdirSync(logs)) record(`log ${join(logs, f)}`, readFileSync(join(logs, f), 'utf8'));
  const db = join(dir, 'carapace.db');
  if (!existsSync(db)) return;
  try {
    const { default: Database } = require_('better-sqlite3') as { default: new (p: string, o: object) => { prepare(s: string): { all(): { data: string; target: string | null }[] }; close(): void } };
    const handle = new Database(db, { readonly: true, fileMustExist: true });
    try {
      record(`audit ${db}`, handle.prepare('SELECT target, data FROM audit').all().map((r) => `${r.target ?? ''} ${r.data}`).join('\n'));
    } finally {
      handle.close();
    }
  } catch {
    // no audit table yet (or a deliberately broken db): nothing to keep
  }
}

import { createRequire } from 'node:module';
const require_ = (id: string) => ({ default: createRequire(import.meta.url)(id) });
