import { registerSecretValue } from './known.ts';

/** Where the kernel reads secret values from. The encrypted store implements this too. */
export interface SecretsSource {
  get(name: string): string | undefined;
}

/**
 * Secrets from environment variables of the same name. Every value handed out is
 * registered as known, so loggers and audit redact it wherever it shows up.
 */
export function envSecrets(env: NodeJS.ProcessEnv = process.env): SecretsSource {
  return {
    get(name) {
      const value = env[name];
      if (value) registerSecretValue(value);
      return value || undefined;
    },
  };
}

/** A fixed map, for tests and for layering (first source that has the name wins). */
export function mapSecrets(values: Record<string, string>): SecretsSource {
  return {
    get(name) {
      const value = Object.hasOwn(values, name) ? values[name] : undefined;
      if (value) registerSecretValue(value);
      return value;
    },
  };
}
