// `{{secret:NAME}}` is how plugins ask the kernel's egress to insert a secret.
// Text that others can steer — what users say, what tools and web pages return,
// what the model writes — must never carry a live placeholder to a place where
// the kernel would substitute it (a provider's request, a channel's platform):
// it would put the secret into the model's context or a chat. A zero-width space
// after the braces keeps the words and breaks the placeholder.

const LIVE = /\{\{(\s*secret:)/gi;

export function defangPlaceholders(text: string): string {
  return text.replace(LIVE, '{{\u200B$1');
}

/** Defang every string inside a JSON-like value (tool inputs and results). */
export function defangDeep<T>(value: T): T {
  if (typeof value === 'string') return defangPlaceholders(value) as T;
  if (Array.isArray(value)) return value.map((v) => defangDeep(v)) as T;
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = defangDeep(v);
    return out as T;
  }
  return value;
}
