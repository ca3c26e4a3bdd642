/**
 * Loads our .proto files once. keepCase keeps field names as written (snake_case) so messages look the
 * same in every language; enums as strings and int64 as Number (shapes never approach 2^53).
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as path from 'node:path';
import type * as protobuf from 'protobufjs';
import { PROTO_DIR } from '../../paths';
import { lenientDecoder } from './lenient-decode';

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

export const INFERENCE_PROTO = path.join(PROTO_DIR, 'inference/grpc_service.proto');
export const INFERENCE_SERVICE_NAME = 'inference.GRPCInferenceService';

/**
 * The definition of one of our services as the server registers it. Two differences from the clients' one:
 * - int64 fields decode as exact decimal strings, so a shape of 2^63-1 is quoted back as sent, not as the
 *   nearest double (9223372036854776000); the tensor codecs turn them into numbers, refusing unsafe ones.
 * - a request whose bytes do not decode is handed to the handler as an UndecodableRequest instead of
 *   throwing: grpc-js answers a throwing deserializer with INTERNAL ("Error deserializing request"), a
 *   server fault, where the client sent garbage (INVALID_ARGUMENT), and the call would bypass our access
 *   log and metrics.
 */
function guardedServiceDefinition(protoFile: string, serviceName: string): grpc.ServiceDefinition {
  const packageDefinition = protoLoader.loadSync([protoFile], { ...LOADER_OPTIONS, longs: String });
  const service = (packageDefinition[serviceName] ?? {}) as grpc.ServiceDefinition;
  const guarded: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  const packageName = serviceName.slice(0, serviceName.lastIndexOf('.'));
  for (const [method, definition] of Object.entries(service)) {
    const decode = definition.requestDeserialize;
    const requestName = `${packageName}.${(definition as { requestType?: { type?: { name?: string } } }).requestType?.type?.name ?? ''}`;
    const lenient = lenientDecoder(protoFile, LOADER_OPTIONS.includeDirs!, requestName, { ...LOADER_OPTIONS, longs: String } as protobuf.IConversionOptions);
    guarded[method] = {
      ...definition,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return decode(bytes);
        } catch (err) {
          // Valid protobuf that protobufjs's conversion trips on (a map entry without a value): decoded again leniently.
          try {
            return lenient(bytes);
          } catch {
            return new UndecodableRequest(`${serviceName}/${method}`, bytes.length, err instanceof Error ? err.message : String(err));
          }
        }
      },
    };
  }
  return guarded as grpc.ServiceDefinition;
}

const serverDefinitions = new Map<string, grpc.ServiceDefinition>();

function cachedDefinition(protoFile: string, serviceName: string): grpc.ServiceDefinition {
  let d = serverDefinitions.get(serviceName);
  if (!d) serverDefinitions.set(serviceName, (d = guardedServiceDefinition(protoFile, serviceName)));
  return d;
}

/** tensorgate.v1.ModelService as the server registers it (see guardedServiceDefinition). */
export const modelServiceDefinition = () => cachedDefinition(MODEL_SERVICE_PROTO, MODEL_SERVICE_NAME);

/** inference.GRPCInferenceService (the v2 protocol) as the server registers it. */
export const inferenceServiceDefinition = () => cachedDefinition(INFERENCE_PROTO, INFERENCE_SERVICE_NAME);

/** What a handler receives instead of a message when the request bytes are not a valid message. */
export class UndecodableRequest {
  constructor(
    /** "service/Method" */
    readonly path: string,
    readonly bytes: number,
    readonly reason: string,
  ) {}

  /** The method's name alone, for the access log and metrics. */
  get method(): string {
    return this.path.slice(this.path.lastIndexOf('/') + 1);
  }

  describe(): string {
    return `the request (${this.bytes} bytes) is not a valid ${this.path} request message: ${this.reason}`;
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
