// The sandbox host process under bubblewrap: if an isolate escape ever gave a
// plugin native code execution, it would land in a process that has no network
// (its own empty network namespace), sees nothing of the machine but system
// libraries and its own few files (no home: no secrets, no database, no keys; not
// even the rest of Carapace's tree), writes nowhere but /dev/shm, and dies with
// the gateway. Isolates are the first wall; this is the second.
// Linux only; elsewhere, or where bubblewrap is missing or cannot create its
// namespaces, the host runs unconfined and says so (the log and `carapace doctor`).
import { accessSync, constants, existsSync, realpathSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { REPO_ROOT } from './manifest.ts';

export function findBwrap(env: NodeJS.ProcessEnv = process.env): string | null {
  if (process.platform !== 'linux') return null;
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir.startsWith('/')) continue; // a relative entry would run whatever bwrap sits in the working directory
    try {
      accessSync(join(dir, 'bwrap'), constants.X_OK);
      return join(dir, 'bwrap');
    } catch {
      // not here
    }
  }
  return null;
}

// What the sandbox host needs of Carapace: its two files, the package.json that
// makes them ES modules, and isolated-vm with the one package it loads.
const HOST_FILES = ['package.json', 'core/plugins/sandbox-host.js', 'core/plugins/isolate-bootstrap.js', 'node_modules/isolated-vm', 'node_modules/node-gyp-build'];

/** bwrap's arguments to run `node [execArgv] script` confined; `readOnly` adds paths it may read (tests' probes). */
export function confinedArgs(opts: { node: string; execArgv: string[]; script: string; readOnly?: string[] }): string[] {
  // --as-pid-1: node is the namespace's init, so no bwrap init process sits beside it.
  const args = ['--unshare-all', '--as-pid-1', '--die-with-parent', '--new-session', '--cap-drop', 'ALL'];
  // The system's shared libraries, time zone data, and nothing else of the host.
  for (const dir of ['/usr', '/lib', '/lib64', '/lib32']) if (existsSync(dir)) args.push('--ro-bind', dir, dir);
  if (existsSync('/etc/localtime')) args.push('--ro-bind', '/etc/localtime', '/etc/localtime');
  args.push('--proc', '/proc', '--dev', '/dev');
  const paths = [opts.node, ...HOST_FILES.map((f) => join(REPO_ROOT, f)), ...(opts.readOnly ?? [])];
  // Each at the path node will ask for, from wherever it really is (node_modules may be a link).
  for (const path of paths) if (existsSync(path)) args.push('--ro-bind', realpathSync(path), path);
  args.push('--remount-ro', '/', '--', opts.node, ...opts.execArgv, opts.script);
  return args;
}
