/**
 * A second decoder for the rare message the normal one (proto-loader over protobufjs) throws on although it is
 * valid protobuf: a map entry with a key and no value (its value is then the default message, as every other
 * protobuf runtime reads it), which protobufjs decodes to null and its toObject then dereferences. Used only
 * after the normal decoder threw, so the common path is untouched: it decodes with protobufjs itself, gives such
 * entries their type's default message, and converts with the same options as proto-loader.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';

export type Decode = (bytes: Buffer) => unknown;

const roots = new Map<string, protobuf.Root>();

function rootOf(protoFile: string, includeDirs: string[]): protobuf.Root {
  let root = roots.get(protoFile);
  if (!root) {
    root = new protobuf.Root();
    root.resolvePath = (origin, target) => {
      for (const dir of includeDirs) if (fs.existsSync(path.join(dir, target))) return path.join(dir, target);
      return protobuf.util.path.resolve(origin, target);
    };
    root.loadSync(protoFile, { keepCase: true });
    root.resolveAll();
    roots.set(protoFile, root);
  }
  return root;
}

/** Gives every null value of a message-typed map its type's default message, at any depth. */
function fillMapValues(message: Record<string, unknown>, type: protobuf.Type): void {
  for (const field of type.fieldsArray) {
    const value = message[field.name];
    const valueType = field.resolvedType;
    if (value === null || value === undefined || !(valueType instanceof protobuf.Type)) continue;
    if (field.map) {
      const entries = value as Record<string, Record<string, unknown> | null>;
      for (const key of Object.keys(entries)) {
        if (entries[key] === null) entries[key] = valueType.create() as unknown as Record<string, unknown>;
        else fillMapValues(entries[key]!, valueType);
      }
    } else if (field.repeated) {
      for (const element of value as Record<string, unknown>[]) fillMapValues(element, valueType);
    } else fillMapValues(value as Record<string, unknown>, valueType);
  }
}

/** A lenient decoder of `typeName` (fully qualified) from `protoFile`, converting as proto-loader does with `options`. */
export function lenientDecoder(protoFile: string, includeDirs: string[], typeName: string, options: protobuf.IConversionOptions): Decode {
  let type: protobuf.Type | undefined;
  return (bytes) => {
    type ??= rootOf(protoFile, includeDirs).lookupType(typeName);
    const message = type.decode(bytes) as unknown as Record<string, unknown>;
    fillMapValues(message, type);
    return type.toObject(message as unknown as protobuf.Message, options);
  };
}
