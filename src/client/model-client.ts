/**
 * A small typed client for tensorgate.v1.ModelService, used by the CLI and the tests. Any gRPC client
 * generated from proto/ works the same way; this one only adds promises.
 */
import * as grpc from '@grpc/grpc-js';
import { loadProtos } from '../api/grpc/protos';

export type ModelServiceClient = grpc.Client & Record<string, Function>;

export function createModelClient(address: string, options: grpc.ClientOptions = {}): ModelServiceClient {
  const { grpcObject } = loadProtos();
  const Ctor = ((grpcObject.tensorgate as grpc.GrpcObject).v1 as grpc.GrpcObject).ModelService as grpc.ServiceClientConstructor;
  return new Ctor(address, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': -1,
    'grpc.max_send_message_length': -1,
    ...options,
  }) as unknown as ModelServiceClient;
}

/** Calls a unary method and resolves with its response (or rejects with the grpc ServiceError). */
export function unary<T = any>(
  client: ModelServiceClient,
  method: 'Predict' | 'ListModels' | 'GetModel',
  request: object,
  options: { deadlineMs?: number; metadata?: grpc.Metadata } = {},
): Promise<T> {
  const callOptions: grpc.CallOptions = options.deadlineMs !== undefined ? { deadline: Date.now() + options.deadlineMs } : {};
  return new Promise((resolve, reject) => {
    (client[method] as Function).call(client, request, options.metadata ?? new grpc.Metadata(), callOptions, (err: grpc.ServiceError | null, res: T) =>
      err ? reject(err) : resolve(res),
    );
  });
}
