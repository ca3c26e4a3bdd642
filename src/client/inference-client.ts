/**
 * A grpc-js client for inference.GRPCInferenceService (the v2 protocol) built from our proto, as any
 * generated client would be; used by the tests and the benchmark. int64 fields decode as numbers unless
 * `exactLongs` asks for decimal strings.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { INFERENCE_PROTO, LOADER_OPTIONS } from '../api/grpc/protos';
import { clientCredentials, securityChannelOptions, type ClientSecurity } from './client-security';

export type InferenceClient = grpc.Client & Record<string, Function>;

/**
 * `exactLongs`: int64/uint64 fields as decimal strings (exact), instead of numbers. `security`: TLS, a client
 * certificate and a bearer token (client-security.ts); plaintext without one.
 */
export function createInferenceClient(address: string, exactLongs = false, options: grpc.ClientOptions = {}, security: ClientSecurity = {}): InferenceClient {
  const definition = protoLoader.loadSync([INFERENCE_PROTO], { ...LOADER_OPTIONS, ...(exactLongs ? { longs: String } : {}) });
  const Ctor = (grpc.loadPackageDefinition(definition).inference as grpc.GrpcObject).GRPCInferenceService as grpc.ServiceClientConstructor;
  return new Ctor(address, clientCredentials(security), { 'grpc.max_receive_message_length': -1, ...options, ...securityChannelOptions(security, options) }) as unknown as InferenceClient;
}

export function v2Call<T = any>(client: InferenceClient, method: string, request: object, deadlineMs?: number): Promise<T> {
  const options: grpc.CallOptions = deadlineMs !== undefined ? { deadline: Date.now() + deadlineMs } : {};
  return new Promise((resolve, reject) => {
    (client[method] as Function).call(client, request, new grpc.Metadata(), options, (err: grpc.ServiceError | null, res: T) => (err ? reject(err) : resolve(res)));
  });
}

/** A v2 request parameter as the InferParameter message. */
export const int64Param = (v: number) => ({ int64_param: v });
export const boolParam = (v: boolean) => ({ bool_param: v });
export const stringParam = (v: string) => ({ string_param: v });
