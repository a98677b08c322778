// The sandbox host process under bubblewrap: if an isolate escape ever gave a
// plugin native code execution, it would land in a process that has no network
// (its own empty network namespace), sees no home directory (no secrets, no
// database, no keys), writes nowhere (everything read-only but /dev and /proc),
// and dies with the gateway. Isolates are the first wall; this is the second.
// Linux only; elsewhere, or where bubblewrap is missing or cannot create its
// namespaces, the host runs unconfined and says so (the log and `carapace doctor`).
import { accessSync, constants, existsSync, realpathSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { REPO_ROOT } from './manifest.ts';

export function findBwrap(env: NodeJS.ProcessEnv = process.env): string | null {
  if (process.platform !== 'linux') return null;
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, 'bwrap'), constants.X_OK);
      return join(dir, 'bwrap');
    } catch {
      // not here
    }
  }
  return null;
}

/**
 * bwrap's arguments to run `node [execArgv] script` confined. `hide` are paths
 * that must not be visible even if they lie under a bound directory (the home).
 */
export function confinedArgs(opts: { node: string; execArgv: string[]; script: string; hide: string[] }): string[] {
  const node = realpathSync(opts.node);
  const root = realpathSync(REPO_ROOT);
  // --as-pid-1: node is the namespace's init, so no bwrap init process sits beside it.
  const args = ['--unshare-all', '--as-pid-1', '--die-with-parent', '--new-session', '--cap-drop', 'ALL'];
  // The system's shared libraries, time zone data, and nothing else of the host.
  for (const dir of ['/usr', '/lib', '/lib64', '/lib32']) if (existsSync(dir)) args.push('--ro-bind', dir, dir);
  if (existsSync('/etc/localtime')) args.push('--ro-bind', '/etc/localtime', '/etc/localtime');
  args.push('--proc', '/proc', '--dev', '/dev');
  args.push('--ro-bind', node, node, '--ro-bind', root, root);
  for (const path of opts.hide) {
    const real = existsSync(path) ? realpathSync(path) : path;
    if (real === root || real.startsWith(root + '/')) args.push('--tmpfs', real);
  }
  args.push('--', node, ...opts.execArgv, opts.script);
  return args;
}
