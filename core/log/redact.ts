// One place that decides what must never leave the process in a log line, an
// audit row or an error message: fields named like credentials, and the values
// of known secrets wherever they appear inside strings.

const SENSITIVE_KEY = /^(authorization|cookie|set-cookie|password|passphrase|secret|token|api[-_]?key|seed|secretkey|private[-_]?key|x-api-key)$/i;
const MIN_SECRET_LENGTH = 4;
export const REDACTED = '[redacted]';

export function isSensitiveKey(key: string): boolean {
  return SENSITIVE_KEY.test(key);
}

export function redactString(text: string, secrets: Iterable<string>): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length >= MIN_SECRET_LENGTH && out.includes(secret)) out = out.split(secret).join(REDACTED);
  }
  return out;
}

/**
 * Length of the longest suffix of `text` that is a proper prefix of one of
 * `values`: what a stream scrubber must hold back until the next chunk, since
 * the rest of a secret may be in it.
 */
export function partialSecretTail(text: string, values: Iterable<string>): number {
  let best = 0;
  for (const v of values) {
    for (let n = Math.min(v.length - 1, text.length); n > best; n--) {
      if (text.endsWith(v.slice(0, n))) {
        best = n;
        break;
      }
    }
  }
  return best;
}

/** Deep copy with sensitive keys masked and secret values scrubbed. Cycles become "[cycle]". */
export function redact(value: unknown, secrets: Iterable<string>): unknown {
  const list = [...secrets].filter((s) => s.length >= MIN_SECRET_LENGTH);
  const seen = new WeakSet<object>();
  const walk = (v: unknown, depth: number): unknown => {
    if (typeof v === 'string') return list.length ? redactString(v, list) : v;
    if (v === null || typeof v !== 'object') return v;
    if (v instanceof Error) return { name: v.name, message: walk(v.message, depth + 1) };
    if (seen.has(v) || depth > 12) return '[cycle]';
    seen.add(v);
    if (Array.isArray(v)) return v.map((x) => walk(x, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      out[k] = isSensitiveKey(k) && x !== null && x !== undefined && typeof x !== 'object' ? REDACTED : walk(x, depth + 1);
    }
    return out;
  };
  return walk(value, 0);
}
