/**
 * A schema-aware parser of the protobuf text format (Triton's config.pbtxt), driven by protobufjs reflection:
 * the schema says whether a field is repeated, a message, a map or an enum, so `dims: [4]` and a repeated field
 * written once both come out as arrays, enum names are checked, and integers are range-checked per type.
 *
 * Why our own: no npm library parses text format against a schema. protobufjs and @bufbuild/protobuf read and
 * write only the binary and JSON forms; `prototxt-parser` is schemaless, so it cannot tell a repeated field seen
 * once from a singular one, nor an enum from a string, nor a typo from a real field.
 *
 * Output: a plain object keyed by the proto field names (snake_case) holding only the fields the text sets;
 * repeated fields as arrays, maps as objects, enums as their names, 64-bit integers as numbers (a value past
 * 2^53 is refused rather than rounded). Fields the caller declares skippable (a real Triton field our schema
 * leaves out) are skipped, balanced, and listed by path in `unsupported`; any other unknown name fails.
 */
import * as protobuf from 'protobufjs';
import { PbtxtError, tokenize, type Token } from './pbtxt-lexer';

export { PbtxtError };

export type PbtxtMessage = Record<string, unknown>;

export interface PbtxtResult {
  message: PbtxtMessage;
  /** Paths of skipped fields, e.g. `optimization`, `input[0].is_non_linear_format_io`, in text order. */
  unsupported: string[];
}

export interface PbtxtOptions {
  /** Named in error messages (default config.pbtxt). */
  file?: string;
  /** True for a field name the schema lacks but that is known to exist (skipped and reported, not an error). */
  skippable?: (messageName: string, field: string) => boolean;
}

const INT_RANGES: Record<string, [bigint, bigint]> = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n], sint32: [-(2n ** 31n), 2n ** 31n - 1n], sfixed32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n], fixed32: [0n, 2n ** 32n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n], sint64: [-(2n ** 63n), 2n ** 63n - 1n], sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n], fixed64: [0n, 2n ** 64n - 1n],
};
const TRUE_WORDS = new Set(['true', 'True', 't']);
const FALSE_WORDS = new Set(['false', 'False', 'f']);
const CLOSERS: Record<string, string> = { '{': '}', '<': '>', '[': ']' };

export function parsePbtxt(text: string, type: protobuf.Type, options: PbtxtOptions = {}): PbtxtResult {
  const file = options.file ?? 'config.pbtxt';
  const parser = new Parser(tokenize(text, file), file, options.skippable ?? (() => false));
  const message = parser.message(type, '', 'eof');
  return { message, unsupported: [...new Set(parser.unsupported)] };
}

/** A message's name as written in its .proto file (nested ones as Outer.Inner, without the package). */
export function messageName(type: protobuf.Type): string {
  let name = type.name;
  for (let p = type.parent; p instanceof protobuf.Type; p = p.parent) name = `${p.name}.${name}`;
  return name;
}

class Parser {
  private pos = 0;
  readonly unsupported: string[] = [];

  constructor(
    private readonly tokens: Token[],
    private readonly file: string,
    private readonly skippable: (messageName: string, field: string) => boolean,
  ) {}

  private peek(): Token {
    return this.tokens[this.pos];
  }

  private next(): Token {
    const t = this.tokens[this.pos];
    if (t.kind !== 'eof') this.pos++;
    return t;
  }

  private atPunct(ch: string): boolean {
    const t = this.peek();
    return t.kind === 'punct' && t.text === ch;
  }

  private eat(ch: string): boolean {
    if (!this.atPunct(ch)) return false;
    this.pos++;
    return true;
  }

  private fail(message: string, at: Token = this.peek(), hint?: string): never {
    throw new PbtxtError(message, this.file, at.line, at.col, hint);
  }

  /** Parses fields until `close` ('}' or '>', or the end of the file for the top level) and consumes it. */
  message(type: protobuf.Type, path: string, close: string): PbtxtMessage {
    const out: PbtxtMessage = {};
    const oneofs = new Map<string, string>();
    for (;;) {
      const t = this.peek();
      if (close === 'eof' ? t.kind === 'eof' : this.atPunct(close)) {
        this.next();
        return out;
      }
      if (t.kind === 'eof') this.fail(`expected a field name or '${close}' (the ${messageName(type)} is not closed)`);
      if (t.kind !== 'ident') this.fail(`expected a field name in ${messageName(type)}, found ${describe(t)}`);
      this.next();
      const fieldPath = path ? `${path}.${t.text}` : t.text;
      const field = type.fields[t.text];
      if (!field) {
        if (!this.skippable(messageName(type), t.text)) this.fail(`unknown field '${t.text}' in ${messageName(type)}`, t, fieldHint(type, t.text));
        this.skipValue();
        this.unsupported.push(fieldPath);
      } else {
        this.checkOneof(field, oneofs, t);
        this.field(field, out, fieldPath, t);
      }
      if (!this.eat(',')) this.eat(';');
    }
  }

  private checkOneof(field: protobuf.Field, seen: Map<string, string>, at: Token): void {
    const group = field.partOf;
    if (!group) return;
    const other = seen.get(group.name);
    if (other !== undefined && other !== field.name) {
      this.fail(`'${field.name}' and '${other}' are both set, but ${group.name} holds one of ${group.oneof.join(', ')}`, at);
    }
    seen.set(group.name, field.name);
  }

  private field(field: protobuf.Field, out: PbtxtMessage, path: string, nameTok: Token): void {
    const isMessage = field.resolvedType instanceof protobuf.Type;
    if (field instanceof protobuf.MapField) {
      this.eat(':');
      const map = (out[field.name] ??= {}) as PbtxtMessage;
      this.oneOrList(field, nameTok, () => this.mapEntry(field, map, path), true);
      return;
    }
    if (isMessage) this.eat(':');
    else if (!this.eat(':')) this.fail(`expected ':' after '${field.name}'`);
    const read = (): unknown => {
      if (!isMessage) return this.scalar(field);
      const index = field.repeated ? `[${((out[field.name] as unknown[] | undefined) ?? []).length}]` : '';
      const open = this.peek();
      if (!this.eat('{') && !this.eat('<')) this.fail(`expected '{' or '<' to open ${messageName(field.resolvedType as protobuf.Type)} '${field.name}', found ${describe(open)}`);
      return this.message(field.resolvedType as protobuf.Type, path + index, CLOSERS[open.text]);
    };
    // `dims: []` sets the field (to no elements), which differs from leaving it out.
    if (field.repeated && this.atPunct('[')) out[field.name] ??= [];
    this.oneOrList(field, nameTok, () => {
      const value = read();
      if (field.repeated) ((out[field.name] ??= []) as unknown[]).push(value);
      else if (field.name in out) this.fail(`'${field.name}' is set twice (it is not a repeated field)`, nameTok);
      else out[field.name] = value;
    }, isMessage);
  }

  /** One value, or `[v, v, ...]` for a repeated field (an empty list is allowed). */
  private oneOrList(field: protobuf.Field, nameTok: Token, readOne: () => void, messages: boolean): void {
    if (!this.atPunct('[')) return readOne();
    if (!field.repeated && !(field instanceof protobuf.MapField)) this.fail(`'${field.name}' is not repeated: it takes one value, not a list`);
    this.next();
    if (this.eat(']')) return;
    for (;;) {
      readOne();
      if (this.eat(']')) return;
      if (!this.eat(',')) this.fail(`expected ',' or ']' in the list of '${field.name}'${messages ? '' : ` (opened at ${nameTok.line}:${nameTok.col})`}, found ${describe(this.peek())}`);
    }
  }

  private mapEntry(field: protobuf.MapField, map: PbtxtMessage, path: string): void {
    const open = this.peek();
    if (!this.eat('{') && !this.eat('<')) this.fail(`expected '{' to open an entry { key: ... value: ... } of map '${field.name}', found ${describe(open)}`);
    const close = CLOSERS[open.text];
    const keyField = new protobuf.Field('key', 1, field.keyType);
    let key: unknown;
    let value: unknown;
    while (!this.eat(close)) {
      const t = this.next();
      if (t.kind === 'eof') this.fail(`expected 'key', 'value' or '${close}' (an entry of '${field.name}' is not closed)`, t);
      if (t.kind !== 'ident' || (t.text !== 'key' && t.text !== 'value')) this.fail(`expected 'key' or 'value' in an entry of map '${field.name}', found ${describe(t)}`, t);
      if ((t.text === 'key' ? key : value) !== undefined) this.fail(`'${t.text}' is set twice in an entry of '${field.name}'`, t);
      if (t.text === 'key') {
        if (!this.eat(':')) this.fail(`expected ':' after 'key'`);
        key = this.scalar(keyField);
      } else if (field.resolvedType instanceof protobuf.Type) {
        this.eat(':');
        const o = this.peek();
        if (!this.eat('{') && !this.eat('<')) this.fail(`expected '{' to open the value of a '${field.name}' entry, found ${describe(o)}`);
        value = this.message(field.resolvedType, `${path}[${key === undefined ? '?' : JSON.stringify(String(key))}]`, CLOSERS[o.text]);
      } else {
        if (!this.eat(':')) this.fail(`expected ':' after 'value'`);
        value = this.scalar(field);
      }
      if (!this.eat(',')) this.eat(';');
    }
    const k = String(key ?? (field.keyType === 'string' ? '' : 0));
    if (Object.prototype.hasOwnProperty.call(map, k)) this.fail(`key ${JSON.stringify(k)} appears twice in '${field.name}'`, open);
    Object.defineProperty(map, k, { value: value ?? (field.resolvedType instanceof protobuf.Type ? {} : defaultScalar(field)), enumerable: true, writable: true, configurable: true });
  }

  private scalar(field: protobuf.FieldBase): unknown {
    const enumType = field.resolvedType instanceof protobuf.Enum ? field.resolvedType : undefined;
    if (enumType) return this.enumValue(field, enumType);
    switch (field.type) {
      case 'string':
      case 'bytes': {
        const first = this.next();
        if (first.kind !== 'string') this.fail(`expected a quoted string for '${field.name}', found ${describe(first)}`, first);
        let s = first.text;
        while (this.peek().kind === 'string') s += this.next().text; // "a" "b" is "ab", as in C
        return s;
      }
      case 'bool': {
        const t = this.next();
        if ((t.kind === 'ident' && TRUE_WORDS.has(t.text)) || (t.kind === 'number' && t.text === '1')) return true;
        if ((t.kind === 'ident' && FALSE_WORDS.has(t.text)) || (t.kind === 'number' && t.text === '0')) return false;
        return this.fail(`expected true or false for '${field.name}', found ${describe(t)}`, t);
      }
      case 'float':
      case 'double':
        return this.floatValue(field);
      default:
        if (field.type in INT_RANGES) return this.intValue(field);
        return this.fail(`field '${field.name}' has type ${field.type}, which this parser does not read`);
    }
  }

  private enumValue(field: protobuf.FieldBase, e: protobuf.Enum): string {
    const start = this.peek();
    if (start.kind === 'ident') {
      this.next();
      if (start.text in e.values) return start.text;
      return this.fail(`unknown ${e.name} value '${start.text}' for '${field.name}' (one of ${Object.keys(e.values).join(', ')})`, start);
    }
    const negative = this.eat('-');
    const t = this.next();
    if (t.kind !== 'number' || !/^\d+$/.test(t.text)) this.fail(`expected a ${e.name} name for '${field.name}', found ${describe(t)}`, t);
    const n = Number(t.text) * (negative ? -1 : 1);
    const name = e.valuesById[n];
    if (name === undefined) this.fail(`${n} is not a ${e.name} value for '${field.name}' (one of ${Object.keys(e.values).join(', ')})`, t);
    return name!;
  }

  private intValue(field: protobuf.FieldBase): number {
    const at = this.peek();
    const negative = this.eat('-');
    const t = this.next();
    if (t.kind !== 'number') this.fail(`expected an integer for '${field.name}', found ${describe(t)}`, t);
    let n: bigint;
    if (/^0[xX][0-9a-fA-F]+$/.test(t.text)) n = BigInt(t.text);
    else if (/^0[0-7]+$/.test(t.text)) n = BigInt(`0o${t.text.slice(1)}`);
    else if (/^\d+$/.test(t.text)) n = BigInt(t.text);
    else return this.fail(`expected an integer for '${field.name}', found ${t.text}`, t);
    if (negative) n = -n;
    const [lo, hi] = INT_RANGES[field.type];
    if (n < lo || n > hi) this.fail(`${n} is out of range for '${field.name}' (${field.type}: ${lo} to ${hi})`, at);
    if (n > BigInt(Number.MAX_SAFE_INTEGER) || n < BigInt(Number.MIN_SAFE_INTEGER)) {
      this.fail(`${n} for '${field.name}' is beyond 2^53 and cannot be read exactly; use a smaller value`, at);
    }
    return Number(n);
  }

  private floatValue(field: protobuf.FieldBase): number {
    const negative = this.eat('-');
    const t = this.next();
    const sign = negative ? -1 : 1;
    if (t.kind === 'ident') {
      const word = t.text.toLowerCase();
      if (word === 'inf' || word === 'infinity') return sign * Infinity;
      if (word === 'nan') return NaN;
    }
    if (t.kind !== 'number') return this.fail(`expected a number for '${field.name}', found ${describe(t)}`, t);
    if (/^0[xX]/.test(t.text)) return sign * Number(BigInt(t.text));
    return sign * Number(t.text.replace(/[fF]$/, ''));
  }

  /** Skips one value of a field the schema lacks: a scalar, a list, or a balanced { } / < > block. */
  private skipValue(): void {
    this.eat(':');
    const first = this.peek();
    if (!(first.kind === 'punct' && first.text in CLOSERS)) {
      this.eat('-');
      const t = this.next();
      if (t.kind === 'eof' || t.kind === 'punct') this.fail(`expected a value, found ${describe(t)}`, t);
      if (t.kind === 'string') while (this.peek().kind === 'string') this.next();
      return;
    }
    const stack: string[] = [];
    do {
      const t = this.next();
      if (t.kind === 'eof') this.fail(`expected '${stack[stack.length - 1]}' (a skipped value is not closed)`, t);
      if (t.kind === 'punct' && t.text in CLOSERS) stack.push(CLOSERS[t.text]);
      else if (t.kind === 'punct' && (t.text === '}' || t.text === '>' || t.text === ']') && stack.pop() !== t.text) this.fail(`unexpected '${t.text}'`, t);
    } while (stack.length > 0);
  }
}

function defaultScalar(field: protobuf.FieldBase): unknown {
  if (field.resolvedType instanceof protobuf.Enum) return field.resolvedType.valuesById[0] ?? '';
  if (field.type === 'string' || field.type === 'bytes') return '';
  return field.type === 'bool' ? false : 0;
}

function describe(t: Token): string {
  if (t.kind === 'eof') return 'the end of the file';
  if (t.kind === 'string') return JSON.stringify(t.text.length > 40 ? `${t.text.slice(0, 40)}...` : t.text);
  return `'${t.text}'`;
}

function fieldHint(type: protobuf.Type, name: string): string {
  const names = Object.keys(type.fields);
  const close = names.filter((n) => editDistance(n, name) <= 2);
  return close.length ? `did you mean ${close.map((n) => `'${n}'`).join(' or ')}?` : `${messageName(type)} fields: ${names.join(', ')}`;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}
