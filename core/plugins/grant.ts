// A plugin's grant as data: what it may do (requested ∩ granted) and what config
// takes away. The checkpoint in capabilities.ts reads only this.

import { permissionsFrom, type Permissions } from './permissions.ts';

export interface Grant {
  pluginId: string;
  allow: Permissions & { worker: boolean };
  deny: Permissions & { worker: boolean };
  /** Absolute directories the `$WORKSPACE` / `$PLUGIN_DATA` roots stand for. */
  roots: { WORKSPACE: string; PLUGIN_DATA: string };
  /**
   * host:port targets the user named in config (config-grants.ts): the user's grant
   * for that host whatever it resolves to, private and loopback addresses included.
   */
  configured?: string[];
}

export function makeGrant(pluginId: string, allowed: Iterable<string>, denied: Iterable<string>, roots: Grant['roots'], configured: string[] = []): Grant {
  return { pluginId, allow: permissionsFrom(allowed), deny: permissionsFrom(denied), roots, configured };
}
