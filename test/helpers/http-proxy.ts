// A forward HTTP proxy on loopback, as a user's would answer: CONNECT tunnels
// (200 Connection Established, then bytes both ways) and absolute-form requests
// relayed to their target. It records what it was asked to reach.
import { createServer, request, type Server } from 'node:http';
import { connect } from 'node:net';

export interface HttpProxy {
  url: string;
  /** `CONNECT host:port` and `METHOD absolute-url`, in order. */
  seen: string[];
  /** Answer every CONNECT with this status instead of tunnelling. */
  refuseConnect: number | null;
  close(): Promise<void>;
}

export async function startHttpProxy(): Promise<HttpProxy> {
  const seen: string[] = [];
  const proxy = { seen, refuseConnect: null as number | null } as HttpProxy;
  const server: Server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const target = new URL(req.url!);
    const upstream = request(target, { method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode!, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  // A tunnel's socket has left the HTTP server's books, not the TCP server's: closing waits for it.
  const tunnels = new Set<{ destroy(): void }>();
  server.on('connect', (req, socket, head) => {
    seen.push(`CONNECT ${req.url}`);
    tunnels.add(socket);
    socket.on('close', () => tunnels.delete(socket));
    if (proxy.refuseConnect !== null) {
      socket.end(`HTTP/1.1 ${proxy.refuseConnect} Refused\r\n\r\n`);
      return;
    }
    const { hostname, port } = new URL(`http://${req.url}`);
    const upstream = connect(Number(port), hostname.replace(/^\[|\]$/g, ''), () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  proxy.close = () => {
    server.closeAllConnections();
    for (const socket of tunnels) socket.destroy();
    return new Promise((resolve) => server.close(() => resolve()));
  };
  return proxy;
}
