import { CliError } from '../errors.ts';
import type { CliIO } from './main.ts';

// What the gateway-facing verbs (cron, approvals) need from the bus client: one
// RPC call as the owner device. The real client (core/cli/connect.ts, built on
// the bus branch) is wired in here at merge; until then these verbs say so
// instead of pretending. Verbs take the connector as an argument so tests can
// drive them against a fake gateway.

export interface GatewayRpc {
  call(method: string, params: Record<string, unknown>): Promise<unknown>;
  close(): Promise<void> | void;
}

export type ConnectGateway = (io: CliIO) => Promise<GatewayRpc>;

export const connectGateway: ConnectGateway = async () => {
  throw new CliError('talking to the gateway is not available in this build yet (the bus client is not wired); is this a partial checkout?');
};

export async function withGateway<T>(connect: ConnectGateway, io: CliIO, fn: (rpc: GatewayRpc) => Promise<T>): Promise<T> {
  const rpc = await connect(io);
  try {
    return await fn(rpc);
  } finally {
    await rpc.close();
  }
}
