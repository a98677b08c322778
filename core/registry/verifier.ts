import type { ManifestVerifier } from './manifest-verifier.ts';
import { standInManifestVerifier } from './manifest-standin.ts';

// The one place that picks the manifest verifier the registry uses.
// TODO(merge): point this at core/plugins/manifest.ts (the plugin host's
// verifyManifest) when that lands; until then the clearly marked stand-in.
export const manifestVerifier: ManifestVerifier = standInManifestVerifier;
