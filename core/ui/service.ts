// The `ui` service: the Control UI / WebChat page (ui/) at `/`. Registering the
// routes costs nothing: the file server (core/ui/static.ts) is imported, and
// the first file read, only when a browser first asks for `/`.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { KernelContext, Service, ServiceFactory } from '../kernel.ts';
import type { StaticFiles } from './static.ts';
import { OPERATOR_SCOPES } from '../bus/devices.ts';
import type { BusService } from '../bus/server.ts';

export interface UiService extends Service {
  readonly name: 'ui';
  /**
   * Mint a one-time invite for this machine's browser and return the link that
   * carries it in the fragment (never sent to a server, never in a log or Referer).
   */
  inviteLink(baseUrl: string): string | null;
}

export const uiService: ServiceFactory = (ctx, registry) => createUiService(ctx, () => registry.find<BusService>('bus'));

export function createUiService(ctx: KernelContext, bus: () => BusService | undefined, opts: { root?: URL } = {}): UiService {
  let files: Promise<StaticFiles> | null = null;
  const load = () => (files ??= import('./static.ts').then((m) => m.createStaticFiles({ root: opts.root, log: ctx.log.child({ service: 'ui' }) })));

  async function serve(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const path = req.url.split('?')[0]!;
    const fs = await load();
    await fs.send(req, reply, await fs.get(path === '/' || path === '/index.html' ? '/ui/index.html' : path));
  }

  return {
    name: 'ui',
    routes(app: FastifyInstance) {
      app.get('/', serve);
      app.get('/index.html', serve);
      app.get('/ui/*', serve);
      app.get('/core/*', serve);
    },
    inviteLink(baseUrl) {
      const b = bus();
      if (!b) return null;
      const inv = b.devices.invite({ role: 'operator', scopes: [...OPERATOR_SCOPES] }, { actor: 'owner:start', scopes: OPERATOR_SCOPES });
      return `${baseUrl.replace(/\/+$/, '')}/#invite=${inv.code}`;
    },
  };
}
