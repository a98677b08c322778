import { CliError, UsageError } from '../../errors.ts';
import { ensureHome } from '../../home.ts';
import { defaultSpec, installService, render, serviceStatus, uninstallService, ServiceError, type ServicePlatform } from '../../ops/service.ts';
import type { Verb, CliIO } from '../main.ts';
import type { ManagerResult } from '../../ops/service.ts';

const usage = `usage: carapace service install [--dry-run] [--force] [--no-manager] [--json]
       carapace service uninstall [--no-manager] [--json]
       carapace service status [--no-manager] [--json]

Runs the gateway of this home as a background service of your user: a systemd
user unit on Linux (~/.config/systemd/user/carapace.service: restarted on
failure, may write only its home) or a launchd agent on macOS
(~/Library/LaunchAgents/ai.carapace.gateway.plist). --dry-run prints the file
instead of writing it (--platform linux|darwin renders the other one).
--no-manager only writes or removes the file and prints the systemctl/launchctl
commands instead of running them. On a
machine nobody logs into (a Raspberry Pi), also run: loginctl enable-linger $USER.`;

function report(io: CliIO, manager: ManagerResult, done: string): void {
  if (manager.ok) io.say(done);
  else {
    io.say(`could not reach the service manager from here (${manager.detail ?? 'unknown error'}); run:`);
    for (const m of manager.manual) io.say(`  ${m}`);
  }
}

export const verb: Verb = {
  usage,
  options: { 'dry-run': { type: 'boolean' }, force: { type: 'boolean' }, platform: { type: 'string' }, 'no-manager': { type: 'boolean' } },
  async run(io, { positionals, values }) {
    const [sub, ...rest] = positionals;
    if (rest.length) throw new UsageError('too many arguments');
    const platform = values.platform as string | undefined;
    if (platform !== undefined && platform !== 'linux' && platform !== 'darwin') throw new UsageError('--platform must be linux or darwin');
    if (platform !== undefined && !(sub === 'install' && values['dry-run'])) throw new UsageError('--platform only goes with install --dry-run');
    try {
      const useManager = values['no-manager'] !== true;
      const spec = defaultSpec(io.home, platform as ServicePlatform | undefined);
      switch (sub) {
        case 'install': {
          if (values['dry-run']) {
            const { path, text } = render(spec);
            if (io.json) io.emit({ path, text });
            else io.stdout.write(text);
            return 0;
          }
          ensureHome(io.paths); // ReadWritePaths= needs the home to exist, or the unit fails to start
          const res = installService(spec, { force: values.force === true, useManager });
          if (io.json) io.emit(res);
          else {
            io.say(`wrote ${res.path}`);
            report(io, res.manager, spec.platform === 'linux' ? `enabled and started ${spec.name}.service (for it to run without a login: loginctl enable-linger $USER)` : `loaded ${spec.name}`);
          }
          return 0;
        }
        case 'uninstall': {
          const res = uninstallService(spec, { useManager });
          if (io.json) io.emit(res);
          else if (!res.removed) io.say(`no service installed at ${res.path}`);
          else report(io, res.manager, `stopped and removed ${res.path}`);
          return 0;
        }
        case 'status': {
          const st = serviceStatus(spec, { useManager });
          if (io.json) io.emit(st);
          else if (!st.installed) io.say(`not installed (carapace service install writes ${st.path})`);
          else io.say(`${st.path}: installed${st.current ? '' : ' (differs from what this Carapace would write: carapace service install --force)'}; ${st.active ? `state: ${st.active}` : 'state unknown (service manager not reachable)'}`);
          return 0;
        }
        default:
          throw new UsageError(sub === undefined ? 'service needs a sub-verb' : `unknown sub-verb "${sub}"`);
      }
    } catch (err) {
      if (err instanceof ServiceError) throw new CliError(err.message);
      throw err;
    }
  },
};
