// placeholder replaced below
import type { LoadSpec, PluginInstance } from './runtime.ts';
import type { HostFunctions } from './host-functions.ts';
export async function loadWorkerPlugin(_spec: LoadSpec, _host: HostFunctions): Promise<PluginInstance> {
  throw new Error('worker runtime not built yet');
}
