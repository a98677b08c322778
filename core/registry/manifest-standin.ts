import { verify } from '../identity/keys.ts';
import { canonicalJson } from './canonical-json.ts';
import { isSemver } from './semver.ts';
import type { ManifestCheck, ManifestVerifier } from './manifest-verifier.ts';

// ============================================================================
// STAND-IN. NOT THE REAL MANIFEST CHECK. Replace with the plugin host's
// core/plugins/manifest.ts verifyManifest once it is on this branch.
// It checks only what the registry relies on (id, version, files, signature
// over the canonical JSON without `signature`, per manifest.md) — not the full
// carapace.plugin/v1 schema, permissions or runtime rules.
// ============================================================================

const ID = /^(@[a-z0-9][a-z0-9-]{0,63}\/)?[a-z0-9][a-z0-9-]{0,63}$/;
const DIGEST = /^sha256-[A-Za-z0-9+/]{43}=$/;

export const standInManifestVerifier: ManifestVerifier = {
  signerKeyId(manifest) {
    const sig = (manifest as { signature?: { keyId?: unknown } } | null)?.signature;
    return typeof sig?.keyId === 'string' ? sig.keyId : null;
  },
  verifyManifest(manifest, publicKey): ManifestCheck {
    if (!manifest || typeof manifest !== 'object' || Array.isArray(manifest)) return { ok: false, reason: 'schema', message: 'plugin.json is not an object' };
    const m = manifest as Record<string, unknown>;
    if (m.schema !== 'carapace.plugin/v1') return { ok: false, reason: 'schema', message: 'plugin.json: /schema must be "carapace.plugin/v1"' };
    if (typeof m.id !== 'string' || !ID.test(m.id)) return { ok: false, reason: 'schema', message: 'plugin.json: /id is invalid' };
    if (!isSemver(m.version)) return { ok: false, reason: 'schema', message: 'plugin.json: /version must be semver' };
    const files = m.files as Record<string, unknown> | undefined;
    if (!files || typeof files !== 'object' || Array.isArray(files) || !Object.values(files).every((d) => typeof d === 'string' && DIGEST.test(d))) {
      return { ok: false, reason: 'schema', message: 'plugin.json: /files must map paths to sha256- digests' };
    }
    const { signature, ...unsigned } = m;
    const sig = signature as { alg?: unknown; keyId?: unknown; sig?: unknown } | undefined;
    if (!sig) return { ok: false, reason: 'unsigned', message: 'plugin.json is unsigned' };
    if (sig.alg !== 'ed25519' || typeof sig.keyId !== 'string') return { ok: false, reason: 'schema', message: 'plugin.json: /signature is malformed' };
    if (!verify(canonicalJson(unsigned), sig.sig, publicKey)) return { ok: false, reason: 'bad-signature', message: 'plugin.json signature does not verify against the publisher key' };
    return { ok: true, manifest: { id: m.id, version: m.version, files: files as Record<string, string>, keyId: sig.keyId } };
  },
};
