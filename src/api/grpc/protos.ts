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

export function modelServiceDefinition(): grpc.ServiceDefinition {
  const { grpcObject } = loadProtos();
  const ctor = (grpcObject.tensorgate as grpc.GrpcObject).v1 as grpc.GrpcObject;
  return (ctor.ModelService as grpc.ServiceClientConstructor).service;
}

export const HEALTH_PROTO = path.join(PROTO_DIR, 'grpc/health/v1/health.proto');

/**
 * Everything reflection describes: our services plus grpc.health.v1 (our Check/Watch copy of its proto,
 * see the comment in that file), so grpcurl / buf curl can call health without a .proto file too.
 */
export function reflectionPackageDefinition(): protoLoader.PackageDefinition {
  return protoLoader.loadSync([MODEL_SERVICE_PROTO, HEALTH_PROTO], LOADER_OPTIONS);
}
