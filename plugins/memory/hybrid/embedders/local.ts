// The default embedder: no network, no model download. It is LEXICAL, not semantic:
// a text becomes a signed feature-hashed bag of words, word bigrams and character
// 3/4-grams, L2-normalised. It matches shared words and shared word pieces
// ("allergic" ~ "allergies", "deploy" ~ "deployment"), so it helps with typos and
// inflections, but it knows nothing about meaning ("car" is not near "vehicle").
// For semantic recall configure an embedding model (memory.embedder "openai/<model>").
import { l2normalize, type Embedder } from './types.ts';
import { contentWords } from '../text.ts';

export const LOCAL_EMBEDDER_VERSION = 'hash-ngram-v2';

// FNV-1a over the feature, then murmur3's finalizer: FNV's low bits are poorly mixed
// (its lowest bit is just the parity of the input), and both bucket and sign come from bits.
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function add(v: Float32Array, feature: string, weight: number): void {
  const h = hash32(feature);
  v[(h & 0x7fffffff) % v.length] += (h & 0x80000000 ? 1 : -1) * weight;
}

export function localVector(text: string, dims: number): Float32Array {
  const v = new Float32Array(dims);
  const words = contentWords(text);
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    add(v, 'w:' + w, 1);
    if (i + 1 < words.length) add(v, 'b:' + w + ' ' + words[i + 1], 0.5);
    const padded = '^' + w + '$';
    const grams: string[] = [];
    for (const n of [3, 4]) for (let j = 0; j + n <= padded.length; j++) grams.push(padded.slice(j, j + n));
    // A long word must not outweigh a short one just by having more n-grams.
    const gw = 1.2 / Math.sqrt(grams.length || 1);
    for (const g of grams) add(v, 'c:' + g, gw);
  }
  return l2normalize(v);
}

export function createLocalEmbedder(opts: { dims?: number } = {}): Embedder {
  const dims = opts.dims ?? 512;
  return {
    id: `local:${LOCAL_EMBEDDER_VERSION}:${dims}`,
    dims,
    lexical: true,
    async embed(texts) {
      return texts.map((t) => localVector(t, dims));
    },
  };
}
