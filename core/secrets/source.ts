import { registerSecretValue } from './known.ts';

// Where a `{"secret": "NAME"}` reference in config.json is looked up. The
// encrypted store (secrets.enc) will implement this; until then the environment
// backs it. Every value handed out is registered for redaction.

export interface SecretsSource {
  get(name: string): string | undefined;
}

export function envSecrets(env: NodeJS.ProcessEnv = process.env): SecretsSource {
  return { get: (name) => env[name] || undefined };
}

/** A config credential (`{"secret":"NAME"}`, `"${ENV}"` or null) → its value, or undefined when unset. */
export function resolveCredential(
  cred: { secret: string } | string | null | undefined,
  secrets: SecretsSource,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  let value: string | undefined;
  if (cred && typeof cred === 'object') value = secrets.get(cred.secret);
  else if (typeof cred === 'string') {
    const m = /^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(cred);
    value = m ? env[m[1]] || undefined : undefined;
  }
  registerSecretValue(value);
  return value;
}
