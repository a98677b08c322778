import { keyIdOf } from '../identity/keys.ts';
import { checkSignature, parseManifest, PluginRefusedError, type TrustedKey } from '../plugins/manifest.ts';
import type { ManifestCheck, ManifestVerifier } from './manifest-verifier.ts';

// The registry checks a release's plugin.json exactly as the plugin host does
// (core/plugins/manifest.ts: carapace.plugin/v1 schema, canonical JSON, ed25519
// with canonical S), against the one key the publisher registered.

export const manifestVerifier: ManifestVerifier = {
  signerKeyId(manifest) {
    const sig = (manifest as { signature?: { keyId?: unknown } } | null)?.signature;
    return typeof sig?.keyId === 'string' ? sig.keyId : null;
  },
  verifyManifest(manifest, publicKey): ManifestCheck {
    try {
      const m = parseManifest(JSON.stringify(manifest));
      const keyId = keyIdOf(publicKey);
      const key: TrustedKey = { keyId, publicKey, firstParty: false, source: 'registry' };
      checkSignature(m, new Map([[keyId, key]]));
      return { ok: true, manifest: { id: m.id, version: m.version, files: m.files, keyId } };
    } catch (err) {
      if (err instanceof PluginRefusedError) return { ok: false, reason: err.reason, message: `plugin.json refused (${err.reason}): ${err.message}` };
      throw err;
    }
  },
};
