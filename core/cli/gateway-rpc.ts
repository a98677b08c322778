import type { CliIO } from './main.ts';
import { requireGateway, cliErrorOf } from './connect.ts';

// What the gateway-facing verbs (cron, approvals) need from the bus client: one
// RPC call as the owner device. Verbs take the connector as an argument so tests
// can drive them against a fake gateway.

export interface GatewayRpc {
  call(method: string, params: Record<string, unknown>): Promise<unknown>;
  close(): Promise<void> | void;
}

export type ConnectGateway = (io: CliIO) => Promise<GatewayRpc>;

export const connectGateway: ConnectGateway = async (io) => {
  const client = await requireGateway(io.paths);
  return {
    call: (method, params) =>
      client.request(method, params).catch((err: unknown) => {
        throw cliErrorOf(err);
      }),
    close: () => client.close(),
  };
};

export async function withGateway<T>(connect: ConnectGateway, io: CliIO, fn: (rpc: GatewayRpc) => Promise<T>): Promise<T> {
  const rpc = await connect(io);
  try {
    return await fn(rpc);
  } finally {
    await rpc.close();
  }
}
