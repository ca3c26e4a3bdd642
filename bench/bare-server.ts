/**
 * The plumbing the benchmark's bare gRPC servers share (the no-op ceiling and the naive server): a grpc-js
 * server with tensorgate's message limits, our ModelService with Predict only, the entry-ipc protocol, and
 * a clean stop. Each entry brings only its Predict.
 */
import * as grpc from '@grpc/grpc-js';
import { modelServiceDefinition } from '../src/api/grpc/protos';
import { serveIpc } from './entry-ipc';

export type PredictHandler = (call: grpc.ServerUnaryCall<any, unknown>, callback: grpc.sendUnaryData<unknown>) => void;

/** Starts the server on an ephemeral 127.0.0.1 port with `predict(ipc)` as Predict, and reports ready. */
export async function serveBare(name: string, predict: (ipc: ReturnType<typeof serveIpc>) => PredictHandler): Promise<void> {
  // Same limits as TensorgateServer so grpc-js takes the same paths.
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024, 'grpc.max_send_message_length': 64 * 1024 * 1024 });
  const ipc = serveIpc(
    () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => (server.forceShutdown(), resolve()), 1000);
        server.tryShutdown(() => (clearTimeout(timer), resolve()));
      }),
  );
  const unimplemented = (_call: unknown, callback: grpc.sendUnaryData<unknown>) =>
    callback({ code: grpc.status.UNIMPLEMENTED, details: `${name}: Predict only` });
  server.addService(modelServiceDefinition(), {
    Predict: predict(ipc),
    Generate: (call: grpc.ServerWritableStream<unknown, unknown>) => call.emit('error', { code: grpc.status.UNIMPLEMENTED }),
    ListModels: unimplemented,
    GetModel: unimplemented,
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  ipc.ready(port);
}

/** A bench entry's main: failures print one line and exit 1 (the parent reports the child exited). */
export function runEntry(name: string, main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    console.error(`bench ${name} failed:`, err);
    process.exit(1);
  });
}
