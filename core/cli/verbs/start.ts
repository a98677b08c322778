import { CliError, UsageError } from '../../errors.ts';
import { ConfigError, isBindValue } from '../../config/config.ts';
import { LockError } from '../../gateway/lock.ts';
import { StoreError } from '../../store/db.ts';
import type { Verb } from '../main.ts';
import { controlUiBase } from '../../ui/base-url.ts';
import { startMemoryReducer } from '../../gateway/memory-reducer.ts';
import { whenOptimizingJitRestored } from '../../gateway/startup-jit.ts';
import { flushCompileCache } from 'node:module';

const SHUTDOWN_GRACE_MS = 15_000;

export const verb: Verb = {
  usage: `usage: carapace start [--port N] [--bind loopback|lan|IP] [--home DIR]

Runs the gateway in the foreground (what \`npm start\` runs). Ctrl-C or SIGTERM
finishes in-flight work and stops cleanly.`,
  options: { port: { type: 'string' }, bind: { type: 'string' } },
  async run(io, { values }) {
    let port: number | undefined;
    if (values.port !== undefined) {
      port = Number(values.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be 0..65535, not "${values.port}"`);
    }
    const bind = values.bind as string | undefined;
    if (bind !== undefined && !isBindValue(bind)) throw new UsageError(`--bind must be loopback, lan or an IP address`);

    const { startGateway } = await import('../../gateway/gateway.ts');
    let gateway;
    try {
      gateway = await startGateway({ home: io.home, port, bind, pretty: io.isTTY });
    } catch (err) {
      if (err instanceof ConfigError || err instanceof LockError || err instanceof StoreError) throw new CliError(err.message);
      // The port that was taken: --port, or gateway.port from config.json.
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new CliError(`port ${(err as { port?: number }).port ?? port} is already in use; pick another with --port`);
      throw err;
    }
    io.stderr.write(`carapace: gateway ready on ${gateway.url} (home ${io.home})\n`);
    const reducer = startMemoryReducer();
    // Node writes the compile cache (bin.js) at exit; a gateway that is only ever
    // killed would never write it and start cold every time.
    flushCompileCache();
    whenOptimizingJitRestored(() => gateway.ctx.log.info('sustained work: the optimizing compilers are on'));
    // A one-time link for this machine's browser (fragment only: never sent to a server or logged).
    const ui = gateway.registry.find<import('../../ui/service.ts').UiService>('ui');
    const link = ui?.inviteLink(controlUiBase(gateway.host, gateway.port, gateway.tls));
    if (link) io.stderr.write(`carapace: open the Control UI (one use, expires in 10 min): ${link}\n`);

    await new Promise<void>((resolve) => {
      let signalled = false;
      const onSignal = (signal: NodeJS.Signals) => {
        if (signalled) {
          io.stderr.write('carapace: second signal, exiting now\n');
          process.exit(1);
        }
        signalled = true;
        const force = setTimeout(() => {
          io.stderr.write('carapace: shutdown took too long, exiting\n');
          process.exit(1);
        }, SHUTDOWN_GRACE_MS);
        force.unref();
        reducer.stop();
        gateway.stop(signal).then(resolve, (err: unknown) => {
          io.stderr.write(`carapace: shutdown failed: ${(err as Error).message}\n`);
          process.exitCode = 1;
          resolve();
        });
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    });
    return process.exitCode === 1 ? 1 : 0;
  },
};
