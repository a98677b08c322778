import { CliError } from '../../errors.ts';
import { ConfigError, loadConfig } from '../../config/config.ts';
import { runChecks, type Finding } from '../../doctor/findings.ts';
import type { Verb } from '../main.ts';

const ICON = { error: '✗', warn: '!', info: 'i' } as const;

export const verb: Verb = {
  usage: `usage: carapace doctor [--fix] [--json] [--home DIR]

Audits this installation: bind exposure, state-directory permissions, DM
policies, providers (and keys that name a secret nobody holds), installed plugins (any the gateway would refuse, such as one
whose files changed since install; unsigned; third-party worker runtime; any-host
network or write-to-/ grants), exec without bubblewrap, unanswered
device pairing requests, database integrity, free disk space. Each finding says what, why and the fix; --fix applies the
fixes that are safe to apply unattended. Exits 1 while an error-level finding remains.`,
  options: { fix: { type: 'boolean' } },
  async run(io, { values }) {
    let config;
    const configFindings: Finding[] = [];
    try {
      const loaded = loadConfig(io.paths.config);
      config = loaded.config;
      const { checkPluginConfig } = await import('../../plugins/config-check.ts');
      const { verifiedManifests } = await import('../../plugins/installed.ts');
      try {
        checkPluginConfig(loaded.raw, verifiedManifests(io.paths));
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        configFindings.push({ id: 'config.plugin-invalid', severity: 'error', what: `config.json is invalid: ${err.message}`, why: 'that plugin refuses to start on it, and a running gateway refuses every edit that keeps it', fix: 'carapace config validate, then correct the path it names' });
      }
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      configFindings.push({ id: 'config.invalid', severity: 'error', what: `config.json is invalid: ${err.message}`, why: 'the gateway will not start on it', fix: 'carapace config validate, then correct the path it names' });
      config = (await import('../../config/config.ts')).defaultConfig();
    }
    const ctx = { paths: io.paths, config, env: process.env };
    let findings = [...configFindings, ...runChecks(ctx)];
    const fixed: string[] = [];
    if (values.fix) {
      for (const f of findings) {
        if (!f.apply) continue;
        try {
          f.apply();
          fixed.push(f.what);
        } catch (err) {
          throw new CliError(`could not apply "${f.fix}": ${(err as Error).message}`);
        }
      }
      findings = [...configFindings, ...runChecks(ctx)];
    }
    const report = findings.map(({ apply, ...f }) => ({ ...f, fixable: apply !== undefined }));
    if (io.json) io.emit({ ok: !findings.some((f) => f.severity === 'error'), findings: report, fixed });
    else {
      for (const line of fixed) io.say(`fixed: ${line}`);
      if (findings.length === 0) io.say('no findings: this installation looks safe');
      for (const f of report) io.say(`${ICON[f.severity]} ${f.what}\n    why: ${f.why}\n    fix: ${f.fix}${f.fixable ? ' (carapace doctor --fix)' : ''}`);
    }
    const errors = findings.filter((f) => f.severity === 'error').length;
    if (errors) throw new CliError(`${errors} error-level finding${errors === 1 ? '' : 's'} remain${errors === 1 ? 's' : ''}: apply the fix each one names${values.fix ? '' : ', or run carapace doctor --fix for the safe ones'}`);
    return 0;
  },
};
