import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { generateKeyPair, type KeyPair } from '../../core/identity/keys.ts';
import { computeFiles, publicKeyFile, signManifest } from '../../core/plugins/sign.ts';
import type { Manifest } from '../../core/plugins/manifest.ts';

export interface TestPlugin {
  dir: string;
  manifest: Manifest;
  manifestText: string;
  cleanup(): void;
}

/** A throwaway publisher key and a trust dir holding its public part. */
export function throwawayPublisher(): { kp: KeyPair; trustDir: string; cleanup(): void } {
  const kp = generateKeyPair();
  const base = mkdtempSync(join(tmpdir(), 'carapace-trust-'));
  const pub = publicKeyFile(kp);
  writeFileSync(join(base, `${pub.keyId}.json`), JSON.stringify(pub));
  return { kp, trustDir: base, cleanup: () => rmSync(base, { recursive: true, force: true }) };
}

/** Write plugin files to a temp folder, compute digests, sign with `kp` (unsigned when kp is null). */
export function makePlugin(
  files: Record<string, string>,
  manifest: Partial<Manifest> & { id: string },
  kp: KeyPair | null,
): TestPlugin {
  const dir = mkdtempSync(join(tmpdir(), `carapace-plugin-${manifest.id.replace(/[@/]/g, '_')}-`));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  const base = {
    schema: 'carapace.plugin/v1',
    name: manifest.id,
    version: '1.0.0',
    kind: 'tool',
    runtime: 'isolate',
    entry: 'index.js',
    publisher: { name: 'test' },
    permissions: {},
    limits: { memoryMb: 32, callTimeoutMs: 2000 },
    ...manifest,
    files: manifest.files ?? computeFiles(dir),
  } as Manifest;
  const signed = kp ? signManifest(base, kp) : base;
  const manifestText = JSON.stringify(signed, null, 2);
  writeFileSync(join(dir, 'plugin.json'), manifestText);
  return { dir, manifest: signed, manifestText, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
