// Hybrid ranking: weighted vector + BM25 scores, recency decay for dated notes,
// then MMR so the top k are not near-copies of one passage.
import { contentWords } from './text.ts';

export interface Candidate {
  id: number;
  /** Raw BM25 (higher is better; 0 = no text match). */
  text: number;
  /** Cosine similarity in [0, 1], or null when there is no vector side. */
  vector: number | null;
}

export interface CandidateInfo {
  docId: string;
  startLine: number;
  endLine: number;
  text: string;
  day: number | null;
}

export interface RankOptions {
  k: number;
  weights: { vectorWeight: number; textWeight: number };
  /** Days since the epoch, today. */
  today: number;
  recency: { halfLifeDays: number; weight: number };
  mmrLambda: number;
  minScore: number;
  /** Similarity at which a candidate counts as a copy of one already picked (default 0.85). */
  dupThreshold?: number;
}

export interface Scored {
  id: number;
  score: number;
  vector: number | null;
  textNorm: number;
}

/** 1 for undated text; for dated text, decays from 1 toward (1 - weight) with the given half-life. */
export function recencyFactor(day: number | null, today: number, r: RankOptions['recency']): number {
  if (day === null || r.weight <= 0) return 1;
  const age = Math.max(0, today - day);
  return 1 - r.weight + r.weight * Math.pow(0.5, age / Math.max(r.halfLifeDays, 0.001));
}

function jaccard(a: Set<string>, b: Set<string>): number {
  if (a.size === 0 || b.size === 0) return 0;
  let inter = 0;
  for (const x of a) if (b.has(x)) inter++;
  return inter / (a.size + b.size - inter);
}

export function rankHybrid(cands: Candidate[], info: (id: number) => CandidateInfo, o: RankOptions): Scored[] {
  const maxText = Math.max(0, ...cands.map((c) => c.text));
  const wv = Math.max(0, o.weights.vectorWeight);
  const wt = Math.max(0, o.weights.textWeight);
  const total = wv + wt || 1;
  const scored: (Scored & { info: CandidateInfo })[] = cands.map((c) => {
    const textNorm = maxText > 0 ? c.text / maxText : 0;
    const base = (wv * (c.vector ?? 0) + wt * textNorm) / total;
    const i = info(c.id);
    return { id: c.id, score: base * recencyFactor(i.day, o.today, o.recency), vector: c.vector, textNorm, info: i };
  });
  const pool = scored.filter((s) => s.score > o.minScore && s.score > 0).sort((a, b) => b.score - a.score).slice(0, o.k * 4);

  // MMR: pick greedily by relevance minus similarity to what is already picked.
  // Similarity is word overlap, raised for overlapping ranges of the same file (the chunker's overlap).
  const words = new Map(pool.map((s) => [s.id, new Set(contentWords(s.info.text))]));
  const sim = (a: (typeof pool)[number], b: (typeof pool)[number]): number => {
    let s = jaccard(words.get(a.id)!, words.get(b.id)!);
    if (a.info.docId === b.info.docId) {
      const overlap = a.info.startLine <= b.info.endLine && b.info.startLine <= a.info.endLine;
      s = Math.max(s, overlap ? 0.9 : 0.25);
    }
    return s;
  };
  const top = pool[0]?.score || 1;
  const picked: (typeof pool)[number][] = [];
  const rest = [...pool];
  const dupes: (typeof pool)[number][] = [];
  while (picked.length < o.k && rest.length) {
    let best = 0;
    let bestVal = -Infinity;
    for (let i = 0; i < rest.length; i++) {
      const redundancy = picked.length ? Math.max(...picked.map((p) => sim(rest[i], p))) : 0;
      // A near-copy of a picked passage (the same note pasted into several days) is
      // held back entirely; it only comes back if nothing else is left.
      if (redundancy >= (o.dupThreshold ?? 0.85)) {
        dupes.push(rest.splice(i--, 1)[0]);
        continue;
      }
      const val = o.mmrLambda * (rest[i].score / top) - (1 - o.mmrLambda) * redundancy;
      if (val > bestVal) {
        bestVal = val;
        best = i;
      }
    }
    if (bestVal === -Infinity) break;
    picked.push(rest.splice(best, 1)[0]);
  }
  while (picked.length < o.k && dupes.length) picked.push(dupes.shift()!);
  return picked.map(({ id, score, vector, textNorm }) => ({ id, score, vector, textNorm }));
}
