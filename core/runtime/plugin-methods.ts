// The plugin methods of the bus (protocol.md: `plugins.list`, and for admins
// `plugins.install` / `plugins.remove` / `plugins.grant`, plus `plugins.reload`).
// They do what `carapace plugins ...` does on this machine's home, audited under
// the calling device, and then the host reloads what changed on disk.
import type { KernelContext } from '../kernel.ts';
import type { Caller, MethodRegistry } from '../bus/types.ts';
import type { PluginHost } from '../plugins/host.ts';
import { CarapaceError } from '../errors.ts';

export interface PluginMethodsDeps {
  ctx: KernelContext;
  methods: MethodRegistry;
  plugins: PluginHost;
}

const pluginId = { type: 'string', minLength: 1, maxLength: 128 } as const;

interface InstallParams {
  spec: string;
  registry?: string;
  trust?: string;
  yes?: boolean;
  allowWorker?: boolean;
  allowDowngrade?: boolean;
}

export function registerPluginMethods({ ctx, methods, plugins }: PluginMethodsDeps): void {
  const actor = (caller: Caller) => `device:${caller.deviceId}`;

  methods.register('plugins.list', {
    scope: 'operator.read',
    handler: () => ({ plugins: plugins.list() }),
  });

  methods.register('plugins.reload', {
    scope: 'operator.admin',
    handler: () => plugins.reloadInstalled(),
  });

  methods.register<InstallParams>('plugins.install', {
    scope: 'operator.admin',
    params: {
      type: 'object',
      properties: {
        spec: { type: 'string', minLength: 1, maxLength: 4096 },
        registry: { type: 'string', pattern: '^https?://', maxLength: 2048 },
        trust: { type: 'string', pattern: '^[0-9a-f]{16}$' },
        yes: { type: 'boolean' },
        allowWorker: { type: 'boolean' },
        allowDowngrade: { type: 'boolean' },
      },
      required: ['spec'],
      additionalProperties: false,
    },
    async handler(p, caller) {
      const install = await import('../plugins/install.ts');
      const { PluginRefusedError } = await import('../plugins/manifest.ts');
      const refuse = (err: unknown): never => {
        const known = err instanceof install.InstallRefused || err instanceof PluginRefusedError;
        if (!known) throw err;
        const reason = (err as { reason: string }).reason;
        ctx.audit.append({ actor: actor(caller), action: 'plugin.install.refused', target: p.spec, data: { reason, message: (err as Error).message, registry: p.registry ?? null } });
        throw new CarapaceError(reason === 'not-found' ? 'NOT_FOUND' : 'FORBIDDEN', (err as Error).message, { reason });
      };
      if (p.registry !== undefined) {
        const registry = await import('../plugins/install-registry.ts');
        const parsed = registry.parseRegistrySpec(p.spec);
        if (!parsed) throw new CarapaceError('INVALID_REQUEST', `"${p.spec}" is not a plugin name[@version]`, { pointer: '/spec' });
        let r;
        try {
          r = await registry.installFromRegistry(ctx.paths, { registry: p.registry, name: parsed.name, version: parsed.version, trustKeyId: p.trust, yes: p.yes === true, allowWorker: p.allowWorker === true, allowDowngrade: p.allowDowngrade === true });
        } catch (err) {
          return refuse(err);
        }
        if (!r.unchanged) ctx.audit.append({ actor: actor(caller), action: 'plugin.install', target: r.id, data: { version: r.version, previous: r.previousVersion, granted: r.granted, keyId: r.keyId, registry: p.registry } });
        return { ...r, installed: true, reload: await plugins.reloadInstalled() };
      }
      // Not a registry name: a folder or a .tgz on the gateway's machine, by absolute path.
      if (!p.spec.startsWith('/')) throw new CarapaceError('INVALID_REQUEST', 'spec must be an absolute path on the gateway machine, or a plugin name with registry', { pointer: '/spec' });
      let local;
      try {
        local = install.openLocalSource(ctx.paths, p.spec);
      } catch (err) {
        return refuse(err);
      }
      try {
        const opts = { allowWorker: p.allowWorker === true, allowDowngrade: p.allowDowngrade === true };
        let inspected;
        try {
          inspected = install.inspectFolder(ctx.paths, local.dir, opts);
        } catch (err) {
          return refuse(err);
        }
        const m = inspected.verified.manifest;
        const shown = { id: m.id, version: m.version, runtime: m.runtime ?? 'isolate', keyId: inspected.verified.key.keyId, requested: inspected.requested, previousVersion: inspected.previous?.version ?? null };
        // Without yes the caller gets what it would accept, and nothing changes.
        if (p.yes !== true) return { ...shown, installed: false };
        const record = install.installFolder(ctx.paths, local.dir, opts, inspected);
        ctx.audit.append({ actor: actor(caller), action: 'plugin.install', target: m.id, data: { version: m.version, previous: shown.previousVersion, granted: record.granted, keyId: shown.keyId, digest: inspected.verified.digest, source: p.spec } });
        return { ...shown, granted: record.granted, installed: true, reload: await plugins.reloadInstalled() };
      } finally {
        local.close();
      }
    },
  });

  methods.register<{ id: string }>('plugins.remove', {
    scope: 'operator.admin',
    params: { type: 'object', properties: { id: pluginId }, required: ['id'], additionalProperties: false },
    async handler(p, caller) {
      const { removePlugin } = await import('../plugins/install.ts');
      if (!removePlugin(ctx.paths, p.id)) throw new CarapaceError('NOT_FOUND', `plugin ${p.id} is not installed`);
      ctx.audit.append({ actor: actor(caller), action: 'plugin.remove', target: p.id });
      return { id: p.id, removed: true, reload: await plugins.reloadInstalled() };
    },
  });

  methods.register<{ id: string; permission: string }>('plugins.grant', {
    scope: 'operator.admin',
    params: {
      type: 'object',
      properties: { id: pluginId, permission: { type: 'string', minLength: 1, maxLength: 512 } },
      required: ['id', 'permission'],
      additionalProperties: false,
    },
    async handler(p, caller) {
      const { grantPermission } = await import('../plugins/install.ts');
      let record;
      try {
        record = grantPermission(ctx.paths, p.id, p.permission);
      } catch (err) {
        const message = (err as Error).message;
        if (/is not installed/.test(message)) throw new CarapaceError('NOT_FOUND', message);
        throw new CarapaceError('INVALID_REQUEST', message, { pointer: '/permission' });
      }
      ctx.audit.append({ actor: actor(caller), action: 'plugin.grant', target: p.id, data: { permission: p.permission } });
      return { id: p.id, granted: record.granted, reload: await plugins.reloadInstalled() };
    },
  });
}
