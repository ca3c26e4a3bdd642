/**
 * Loads our .proto files once. keepCase keeps field names as written (snake_case) so messages look the
 * same in every language; enums as strings and int64 as Number (shapes never approach 2^53).
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as path from 'node:path';
import { PROTO_DIR } from '../../paths';

export const MODEL_SERVICE_PROTO = path.join(PROTO_DIR, 'tensorgate/v1/model_service.proto');
export const MODEL_SERVICE_NAME = 'tensorgate.v1.ModelService';

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

let cached: { packageDefinition: protoLoader.PackageDefinition; grpcObject: grpc.GrpcObject } | undefined;

export function loadProtos() {
  if (!cached) {
    const packageDefinition = protoLoader.loadSync([MODEL_SERVICE_PROTO], LOADER_OPTIONS);
    cached = { packageDefinition, grpcObject: grpc.loadPackageDefinition(packageDefinition) };
  }
  return cached;
}

/**
 * The ModelService definition the server registers. Two differences from the clients' one:
 * - int64 fields decode as exact decimal strings, so a shape of 2^63-1 is quoted back as sent, not as the
 *   nearest double (9223372036854776000); the tensor codec turns them into numbers, refusing unsafe ones.
 * - a request whose bytes do not decode is handed to the handler as an UndecodableRequest instead of
 *   throwing: grpc-js answers a throwing deserializer with INTERNAL ("Error deserializing request"), a
 *   server fault, where the client sent garbage (INVALID_ARGUMENT), and the call would bypass our access
 *   log and metrics.
 */
export function modelServiceDefinition(): grpc.ServiceDefinition {
  serverDefinition ??= (() => {
    const packageDefinition = protoLoader.loadSync([MODEL_SERVICE_PROTO], { ...LOADER_OPTIONS, longs: String });
    const service = (packageDefinition[MODEL_SERVICE_NAME] ?? {}) as grpc.ServiceDefinition;
    const guarded: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
    for (const [method, definition] of Object.entries(service)) {
      const decode = definition.requestDeserialize;
      guarded[method] = {
        ...definition,
        requestDeserialize: (bytes: Buffer) => {
          try {
            return decode(bytes);
          } catch (err) {
            return new UndecodableRequest(method, bytes.length, err instanceof Error ? err.message : String(err));
          }
        },
      };
    }
    return guarded as grpc.ServiceDefinition;
  })();
  return serverDefinition;
}

let serverDefinition: grpc.ServiceDefinition | undefined;

/** What a handler receives instead of a message when the request bytes are not a valid message. */
export class UndecodableRequest {
  constructor(
    readonly method: string,
    readonly bytes: number,
    readonly reason: string,
  ) {}

  describe(): string {
    return `the request (${this.bytes} bytes) is not a valid ${MODEL_SERVICE_NAME}/${this.method} request message: ${this.reason}`;
  }
}

export const HEALTH_PROTO = path.join(PROTO_DIR, 'grpc/health/v1/health.proto');

/**
 * Everything reflection describes: our services plus grpc.health.v1 (our Check/Watch copy of its proto,
 * see the comment in that file), so grpcurl / buf curl can call health without a .proto file too.
 */
export function reflectionPackageDefinition(): protoLoader.PackageDefinition {
  return protoLoader.loadSync([MODEL_SERVICE_PROTO, HEALTH_PROTO], LOADER_OPTIONS);
}
