// The registry accepts a plugin release only when its plugin.json is signed by
// the key the publisher registered (registry.md). Checking a manifest — schema,
// canonical JSON, ed25519 signature — is the plugin host's job
// (core/plugins/manifest.ts); the registry calls it through this interface
// (verifier.ts) so its tests can swap in hostile verifiers if they need to.

/** The manifest fields the registry itself relies on after verification. */
export interface VerifiedManifest {
  id: string;
  version: string;
  files: Record<string, string>;
  keyId: string;
}

export type ManifestCheck = { ok: true; manifest: VerifiedManifest } | { ok: false; reason: string; message: string };

export interface ManifestVerifier {
  /** The keyId the manifest claims to be signed with, or null when it has none. */
  signerKeyId(manifest: unknown): string | null;
  /** Schema + signature check of a parsed plugin.json against one publisher public key. */
  verifyManifest(manifest: unknown, publicKey: Uint8Array): ManifestCheck;
}
