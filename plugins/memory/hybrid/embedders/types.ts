// What the index needs from an embedder. `id` names everything that changes the
// vectors (kind, endpoint, model, dims): a different id means every vector is stale.

export interface Embedder {
  readonly id: string;
  /** Known up front for the local embedder; learned from the first response for a remote model. */
  readonly dims: number | undefined;
  /** True when the vectors come from a lexical hash, so callers can say so honestly. */
  readonly lexical: boolean;
  embed(texts: string[]): Promise<Float32Array[]>;
}

export class EmbedderError extends Error {
  readonly status?: number;
  constructor(message: string, status?: number) {
    super(message);
    this.name = 'EmbedderError';
    this.status = status;
  }
}

export function l2normalize(v: Float32Array): Float32Array {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  if (s > 0) {
    const inv = 1 / Math.sqrt(s);
    for (let i = 0; i < v.length; i++) v[i] *= inv;
  }
  return v;
}
