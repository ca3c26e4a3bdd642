/**
 * A small typed client for tensorgate.v1.ModelService, used by the CLI and the tests. Any gRPC client
 * generated from proto/ works the same way; this one adds promises, several addresses with round-robin
 * balancing, and (asked for) retries of idempotent calls on UNAVAILABLE (see channel-options.ts).
 */
import * as grpc from '@grpc/grpc-js';
import { loadProtos } from '../api/grpc/protos';
import { clientChannelOptions, clientTarget } from './channel-options';
import { clientCredentials, securityChannelOptions, type ClientSecurity } from './client-security';

export type ModelServiceClient = grpc.Client & Record<string, Function>;

/**
 * `address`: HOST:PORT, or several as `a:1,b:2` (IP addresses, balanced round-robin; see clientTarget), or any
 * grpc-js target. `retries`: round-robin over every address and retries of idempotent calls on UNAVAILABLE
 * (the CLI turns it on). `options` override the channel options, the service config included. `security`: TLS,
 * a client certificate and a bearer token (client-security.ts); plaintext without one.
 */
export function createModelClient(
  address: string,
  options: grpc.ClientOptions = {},
  { retries = false, security = {} }: { retries?: boolean; security?: ClientSecurity } = {},
): ModelServiceClient {
  const { grpcObject } = loadProtos();
  const Ctor = ((grpcObject.tensorgate as grpc.GrpcObject).v1 as grpc.GrpcObject).ModelService as grpc.ServiceClientConstructor;
  return new Ctor(clientTarget(address), clientCredentials(security), {
    'grpc.max_receive_message_length': -1,
    'grpc.max_send_message_length': -1,
    ...clientChannelOptions(address, { retries }),
    ...options,
    ...securityChannelOptions(security, options),
  }) as unknown as ModelServiceClient;
}

/** Calls a unary method and resolves with its response (or rejects with the grpc ServiceError). */
export function unary<T = any>(
  client: ModelServiceClient,
  method: 'Predict' | 'ListModels' | 'GetModel' | 'ControlCanary',
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
