// Words as both sides of the index see them.

// Function words carry no recall signal and would make every query look alike.
export const STOPWORDS = new Set(
  ('a an and are as at be been but by can could did do does for from had has have he her his how i if in into is it its ' +
    'me my no not of on or our she so than that the their them then there these they this to was we were what when where ' +
    'which who whom why will with would you your about also just very').split(' '),
);

export function tokenize(text: string): string[] {
  return text.toLowerCase().normalize('NFKC').match(/[\p{L}\p{N}]+/gu) ?? [];
}

export function contentWords(text: string): string[] {
  return tokenize(text).filter((w) => !STOPWORDS.has(w));
}

/**
 * An FTS5 MATCH expression for a free-text query: every content word quoted (so no
 * query can inject FTS syntax) and OR-ed, so a paraphrase sharing some words still
 * matches and BM25 ranks by how many and how rare. Null when nothing is searchable.
 */
export function ftsQuery(query: string): string | null {
  let words = contentWords(query);
  if (words.length === 0) words = tokenize(query);
  const unique = [...new Set(words)].slice(0, 32);
  if (unique.length === 0) return null;
  return unique.map((w) => `"${w.replace(/"/g, '""')}"`).join(' OR ');
}
