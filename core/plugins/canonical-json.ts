// RFC 8785 (JCS) canonical JSON: object keys sorted by UTF-16 code units, no
// insignificant whitespace, numbers in ECMAScript shortest round-trip form and
// strings escaped as JSON.stringify does (which is what JCS specifies). The
// signature of a manifest covers exactly these bytes.

export class CanonicalJsonError extends Error {}

export function canonicalJson(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new CanonicalJsonError('canonical JSON has no NaN or Infinity');
      return JSON.stringify(value); // ES Number::toString, -0 becomes 0 as JCS requires
    case 'string':
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return '[' + value.map((v) => canonicalJson(v)).join(',') + ']';
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
      return '{' + keys.map((k) => JSON.stringify(k) + ':' + canonicalJson(obj[k])).join(',') + '}';
    }
    default:
      throw new CanonicalJsonError(`canonical JSON cannot hold a ${typeof value}`);
  }
}
