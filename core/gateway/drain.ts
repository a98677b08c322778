// A stop answers the requests in flight and then closes every connection left.
// Node's closeIdleConnections (what Fastify's close relies on) leaves a connection
// that never sent a request, and TLS gives one that never said hello two minutes:
// a client that connected and went quiet held a stop until its grace ran out, and
// the stop's clean-up (audit, run file, database) never ran. Upgraded connections
// (the bus's WebSockets) are not the HTTP server's any more; @fastify/websocket
// closes them.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

export interface RequestDrain {
  /** Stop accepting, wait for the requests in flight, close what is left; resolves when the server is closed. */
  close(closeApp: () => Promise<void>): Promise<void>;
}

export function drainOnClose(server: Server): RequestDrain {
  let inFlight = 0;
  const waiting: (() => void)[] = [];
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('request', (_req, res) => {
    inFlight++;
    res.once('close', () => {
      if (--inFlight === 0) for (const resolve of waiting.splice(0)) resolve();
    });
  });
  return {
    async close(closeApp) {
      const closed = closeApp();
      if (inFlight > 0) await new Promise<void>((resolve) => waiting.push(resolve));
      server.closeAllConnections();
      // Not one byte received: no handshake begun, nothing to finish (a TLS server's raw sockets).
      for (const socket of sockets) if (socket.bytesRead === 0) socket.destroy();
      await closed;
    },
  };
}
