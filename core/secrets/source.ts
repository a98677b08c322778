import { registerSecretValue } from './known.ts';

// Where kernel code reads a secret's value: egress substitution of
// `{{secret:NAME}}`, hook authentication, `{"secret": "NAME"}` in config. The
// encrypted store (store.ts) implements it; the gateway layers the store over the
// environment. Every value handed out is registered for redaction.

export interface SecretsSource {
  get(name: string): string | undefined;
}

/** Secrets from environment variables of the same name. */
export function envSecrets(env: NodeJS.ProcessEnv = process.env): SecretsSource {
  return {
    get(name) {
      const value = env[name] || undefined;
      registerSecretValue(value);
      return value;
    },
  };
}

/** A fixed map, for tests. */
export function mapSecrets(values: Record<string, string>): SecretsSource {
  return {
    get(name) {
      const value = Object.hasOwn(values, name) ? values[name] : undefined;
      registerSecretValue(value);
      return value;
    },
  };
}

/** The first source that has the name wins. */
export function layeredSecrets(...sources: SecretsSource[]): SecretsSource {
  return {
    get(name) {
      for (const source of sources) {
        const value = source.get(name);
        if (value !== undefined) return value;
      }
      return undefined;
    },
  };
}

/** A config credential (`{"secret":"NAME"}`, `"${ENV}"` or null) → its value, or undefined when unset. Never a literal. */
export function resolveCredential(
  cred: unknown,
  secrets: SecretsSource,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  let value: string | undefined;
  if (cred && typeof cred === 'object' && typeof (cred as { secret?: unknown }).secret === 'string') value = secrets.get((cred as { secret: string }).secret);
  else if (typeof cred === 'string') {
    const m = /^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(cred);
    value = m ? env[m[1]] || undefined : undefined;
  }
  registerSecretValue(value);
  return value;
}
