/**
 * Child-process entry: the gRPC ceiling. A bare grpc-js server with our ModelService definition (the same
 * proto-loader options as tensorgate, so the same (de)serialisation work) whose Predict answers at once
 * with a precomputed response captured from the real server for the same request, so request and
 * response bytes match. Whatever tensorgate does beyond this is its own cost.
 *
 * argv[2]: a JSON file { [model]: PredictResponse } written by bench/run.ts (Buffers as Buffer.toJSON).
 */
import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import { modelServiceDefinition } from '../src/api/grpc/protos';
import { serveIpc } from './entry-ipc';
import { reviveBuffers } from './workload';

async function main(): Promise<void> {
  const file = process.argv[2];
  if (!file) throw new Error('usage: noop-server-entry <responses.json>');
  const responses = JSON.parse(fs.readFileSync(file, 'utf8'), reviveBuffers) as Record<string, object>;
  // Same limits as TensorgateServer so grpc-js takes the same paths.
  const server = new grpc.Server({
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
  });
  const ipc = serveIpc(
    () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => (server.forceShutdown(), resolve()), 1000);
        server.tryShutdown(() => (clearTimeout(timer), resolve()));
      }),
  );
  const unimplemented = (_call: unknown, callback: grpc.sendUnaryData<unknown>) =>
    callback({ code: grpc.status.UNIMPLEMENTED, details: 'no-op bench server: Predict only' });
  server.addService(modelServiceDefinition(), {
    Predict(call: grpc.ServerUnaryCall<{ model: string }, unknown>, callback: grpc.sendUnaryData<unknown>) {
      const response = responses[call.request.model];
      if (!response) {
        callback({ code: grpc.status.NOT_FOUND, details: `no-op bench server has no response for '${call.request.model}'` });
        return;
      }
      ipc.counters.requests++;
      ipc.counters.rows++;
      callback(null, response);
    },
    Generate: (call: grpc.ServerWritableStream<unknown, unknown>) => call.emit('error', { code: grpc.status.UNIMPLEMENTED }),
    ListModels: unimplemented,
    GetModel: unimplemented,
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  ipc.ready(port);
}

main().catch((err: unknown) => {
  console.error('bench noop-server-entry failed:', err);
  process.exit(1);
});
