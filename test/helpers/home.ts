import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { homePaths, type HomePaths } from '../../core/home.ts';
import { recordHome } from './artifacts.ts';

export interface TempHome {
  dir: string;
  paths: HomePaths;
  cleanup(): void;
}

/** A fresh, empty CARAPACE_HOME under the OS temp dir (not created: the gateway creates it). */
export function tempHome(label = 'home'): TempHome {
  const base = mkdtempSync(join(tmpdir(), `carapace-${label}-`));
  const dir = join(base, 'home');
  return {
    dir,
    paths: homePaths(dir),
    cleanup: () => {
      recordHome(dir);
      rmSync(base, { recursive: true, force: true });
    },
  };
}
