// A loopback stand-in for an OpenAI-compatible embeddings API (OpenAI, Ollama's /v1):
// POST /v1/embeddings {model, input[]} → {object:"list", data:[{object:"embedding", index, embedding}], model, usage}.
// Vectors are deterministic lexical hashes, so search quality is testable; the model
// name picks the dimensions ("*-64" → 64), so a model change is a real change.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { localVector } from '../../plugins/memory/hybrid/embedders/local.ts';

export interface FakeEmbeddings {
  url: string;
  requests: { model: string; inputs: string[]; auth?: string }[];
  /** 'ok', 'fail' (HTTP 500), or 'stall' (accept and never answer). */
  mode: 'ok' | 'fail' | 'stall';
  /** Switch to 'stall' after this many answered requests. */
  stallAfter: number | null;
  close(): Promise<void>;
}

export async function startFakeEmbeddings(): Promise<FakeEmbeddings> {
  const fake = { url: '', requests: [], mode: 'ok', stallAfter: null } as unknown as FakeEmbeddings & { server: Server };
  let answered = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/embeddings') {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"message":"not found"}}');
        return;
      }
      const parsed = JSON.parse(body) as { model: string; input: string | string[] };
      const inputs = Array.isArray(parsed.input) ? parsed.input : [parsed.input];
      fake.requests.push({ model: parsed.model, inputs, auth: req.headers.authorization });
      if (fake.stallAfter !== null && answered >= fake.stallAfter) fake.mode = 'stall';
      if (fake.mode === 'stall') return; // hold the socket open, answer nothing
      if (fake.mode === 'fail') {
        res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":{"message":"model overloaded","type":"server_error"}}');
        return;
      }
      answered++;
      const dims = Number(/-(\d+)$/.exec(parsed.model)?.[1] ?? 32);
      const data = inputs.map((t, index) => ({ object: 'embedding', index, embedding: Array.from(localVector(t, dims)) }));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data, model: parsed.model, usage: { prompt_tokens: 1, total_tokens: 1 } }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  fake.close = () => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  };
  return fake;
}
