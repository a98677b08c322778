// Topic pattern matching, shared by the broker, the client (also in the browser:
// no Node APIs here) and the tests' in-process bus.

/** Does `pattern` (segments, `*` for exactly one, a final `>` for one or more) match the concrete `topic`? */
export function matches(pattern: string, topic: string): boolean {
  return matchSegments(pattern.split('.'), topic.split('.'));
}

export function matchSegments(p: readonly string[], t: readonly string[]): boolean {
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return t.length > i;
    if (i >= t.length) return false;
    if (p[i] !== '*' && p[i] !== t[i]) return false;
  }
  return p.length === t.length;
}
