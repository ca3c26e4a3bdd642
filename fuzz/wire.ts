/**
 * Encodes the fuzzer's gRPC request objects with protobufjs from the server's own .proto files. The fuzzer
 * sends bytes (its grpc-js client's serializer is the identity), so what reaches the server may be anything:
 * a valid message, one with junk appended at the wire level, or a byte-level mutation of a valid one.
 */
import fc from 'fast-check';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { PROTO_DIR } from '../src/paths';
import { mutateBytesArb, wireJunkArb, withInvalidUtf8 } from './gen-common';

let root: protobuf.Root | undefined;

function types(): protobuf.Root {
  if (!root) {
    root = new protobuf.Root();
    root.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(PROTO_DIR, target));
    root.loadSync([path.join(PROTO_DIR, 'tensorgate/v1/model_service.proto'), path.join(PROTO_DIR, 'inference/grpc_service.proto')], { keepCase: true });
    root.resolveAll();
  }
  return root;
}

/**
 * `value` as the named message's bytes. protobufjs's fromObject coerces what it can (numbers from strings,
 * enums by name or number) and drops what it cannot, so the wrong types that matter on the wire come from the
 * byte-level mutations and wireJunkArb; invalid UTF-8 marks in strings become invalid bytes here.
 */
export function encode(typeName: string, value: Record<string, unknown>): Buffer {
  const type = types().lookupType(typeName);
  return withInvalidUtf8(type.encode(type.fromObject(value)).finish());
}

/** Decodes a response message (for the few checks that read one: a stream's error_message). */
export function decode(typeName: string, bytes: Uint8Array): Record<string, unknown> {
  const type = types().lookupType(typeName);
  return type.toObject(type.decode(bytes), { longs: String, enums: String, defaults: true }) as Record<string, unknown>;
}

/**
 * A request message's bytes: mostly the encoded message as it is, else with wire-level junk appended, else
 * byte-mutated (so garbage protobuf reaches the server's decoder).
 */
export function bodyArb(typeName: string, message: fc.Arbitrary<Record<string, unknown>>): fc.Arbitrary<Buffer> {
  const encoded = message.map((m) => encode(typeName, m));
  return fc.oneof(
    { weight: 24, arbitrary: encoded },
    { weight: 2, arbitrary: fc.tuple(encoded, fc.array(wireJunkArb, { minLength: 1, maxLength: 3 })).map(([b, junk]) => Buffer.concat([b, ...junk])) },
    { weight: 4, arbitrary: encoded.chain((b) => mutateBytesArb(b)) },
  );
}

/** The call's deadline: the harness's own (undefined) for almost every input, else one a client might set too short. */
export const deadlineArb: fc.Arbitrary<number | undefined> = fc.oneof(
  { weight: 30, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 30 }) },
);
