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

/** The NAME of a `"${NAME}"` credential, or null. */
export function envRefName(cred: unknown): string | null {
  return typeof cred === 'string' ? (/^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(cred)?.[1] ?? null) : null;
}

/**
 * `base`, except that the name a `"${NAME}"` credential refers to is read from the
 * environment only: config.md gives `{"secret": NAME}` to the store and `"${NAME}"`
 * to the environment, and the kernel's layered source would give a stored secret of
 * the same name precedence.
 */
export function withEnvCredential(cred: unknown, base: SecretsSource, env: NodeJS.ProcessEnv = process.env): SecretsSource {
  const name = envRefName(cred);
  if (!name) return base;
  const fromEnv = envSecrets(env);
  return { get: (n) => (n === name ? fromEnv.get(n) : base.get(n)) };
}

/** A config credential (`{"secret":"NAME"}`, `"${ENV}"` or null) → its value, or undefined when unset. Never a literal. */
export function resolveCredential(
  cred: unknown,
  secrets: SecretsSource,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  let value: string | undefined;
  if (cred && typeof cred === 'object' && typeof (cred as { secret?: unknown }).secret === 'string') value = secrets.get((cred as { secret: string }).secret);
  else {
    const name = envRefName(cred);
    value = name ? env[name] || undefined : undefined;
  }
  registerSecretValue(value);
  return value;
}
