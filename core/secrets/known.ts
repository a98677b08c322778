// The secret values this process knows, so that redaction (logs, audit, errors)
// can scrub them wherever they appear. Process-wide on purpose: a value must be
// redacted by every logger in the process, whoever loaded it.

const known = new Set<string>();

/** Environment variables whose values are credentials by their name. */
const CREDENTIAL_ENV = /(_API_KEY|_TOKEN|_SECRET|_PASSWORD|^CARAPACE_PASSPHRASE)$/;

export function registerSecretValue(value: string | undefined | null): void {
  if (value && value.length >= 4) known.add(value);
}

export function secretValues(): Iterable<string> {
  return known;
}

export function registerEnvSecrets(env: NodeJS.ProcessEnv = process.env): void {
  for (const [name, value] of Object.entries(env)) if (CREDENTIAL_ENV.test(name)) registerSecretValue(value);
}
