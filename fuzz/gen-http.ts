/**
 * HTTP-level faults every HTTP target's generator shares: a JSON body bent structurally (fields dropped,
 * duplicated, retyped, unknown ones added, prototype keys, deep nesting), then serialised as valid JSON or
 * not (cut short, invalid UTF-8, trailing junk), under a content type right or wrong.
 */
import fc from 'fast-check';
import { b64, type Case } from './case';
import { BAD_UTF8_MARK, withInvalidUtf8 } from './gen-common';

/** A value of a JSON type other than the one a field wants. */
export const wrongTypeArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, 0, -1, 1.5, '', 'x', [], {}, [[]], { a: 1 }, 1e308, '9'.repeat(400)),
  fc.string({ maxLength: 6 }),
);

/** `depth` nested arrays around a number: `[[[...1...]]]`. */
export const deepArray = (depth: number) => `${'['.repeat(depth)}1${']'.repeat(depth)}`;

type Json = Record<string, unknown>;

/** Structural mutations of a JSON object: a key dropped, retyped, duplicated into an unknown one, or a poison key added. */
export function mutateObjectArb(obj: Json): fc.Arbitrary<Json> {
  const keys = Object.keys(obj);
  const key = keys.length ? fc.constantFrom(...keys) : fc.constant('x');
  return fc.oneof(
    key.map((k) => {
      const { [k]: _dropped, ...rest } = obj;
      return rest;
    }),
    fc.tuple(key, wrongTypeArb).map(([k, v]) => ({ ...obj, [k]: v })),
    fc.tuple(key, fc.constantFrom('extra', 'Inputs', 'model ', 'x')).map(([k, name]) => ({ ...obj, [name]: obj[k] ?? 1 })),
    fc.constant(JSON.parse(`{"__proto__": {"polluted": 1}, "constructor": {"prototype": {}}}`) as Json).map((p) => ({ ...obj, ...p })),
  );
}

/** How the body object becomes bytes: JSON (mostly), or broken JSON, invalid UTF-8, a deep nest, or not JSON at all. */
export function serialiseArb(obj: Json): fc.Arbitrary<Buffer> {
  const text = JSON.stringify(obj);
  return fc.oneof(
    { weight: 20, arbitrary: fc.constant(withInvalidUtf8(Buffer.from(text))) },
    { weight: 1, arbitrary: fc.nat().map((n) => Buffer.from(text.slice(0, n % Math.max(1, text.length)))) },
    { weight: 1, arbitrary: fc.constantFrom(`${text}}`, `${text} trailing`, `${text}\u0000`, text.replace(/"/, "'"), text.replace('{', '{"a":1,')).map((t) => Buffer.from(t)) },
    { weight: 1, arbitrary: fc.constant(Buffer.from(text.replace(/"([a-z_]+)":/, `"$1${BAD_UTF8_MARK}":`))).map(withInvalidUtf8) },
    { weight: 1, arbitrary: fc.integer({ min: 1000, max: 200_000 }).map((d) => Buffer.from(`{"inputs": ${deepArray(d)}}`)) },
    { weight: 1, arbitrary: fc.constantFrom('', 'null', '[]', '"x"', '1', 'true', '[{}]', '{', '\ufeff{}').map((t) => Buffer.from(t)) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)) },
  );
}

/** A Content-Type: JSON's, or something a client sends by mistake (or none). */
export const contentTypeArb: fc.Arbitrary<string | undefined> = fc.oneof(
  { weight: 16, arbitrary: fc.constant('application/json') },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      undefined,
      'application/octet-stream',
      'text/plain',
      'application/json; charset=utf-16',
      'multipart/form-data; boundary=x',
      'application/x-www-form-urlencoded',
      'APPLICATION/JSON',
      'application/json, text/plain',
      '*/*',
      'x'.repeat(300),
    ),
  },
);

/** Extra headers now and then: a compressed body it is not, an Expect, a chunked upload. */
export const extraHeadersArb: fc.Arbitrary<Record<string, string>> = fc.oneof(
  { weight: 20, arbitrary: fc.constant({}) },
  { weight: 1, arbitrary: fc.constantFrom<Record<string, string>>({ 'content-encoding': 'gzip' }, { 'content-encoding': 'identity' }, { expect: '100-continue' }, { 'transfer-encoding': 'chunked' }, { 'x-request-id': 'r'.repeat(200) }) },
);

export function httpCase(method: string, path: string, body: Buffer, contentType: string | undefined, extra: Record<string, string>): Case {
  return { kind: 'http', method, path, headers: { ...(contentType !== undefined ? { 'content-type': contentType } : {}), ...extra }, body: b64(body) };
}

/** A path segment for a model name: percent-encoded, sometimes raw (dot segments, encoded slashes), sometimes overlong. */
export function pathSegmentArb(names: readonly string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 12, arbitrary: fc.constantFrom(...names) },
    { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 10 }).map(encodeURIComponent) },
    { weight: 1, arbitrary: fc.constantFrom('..', '.', '%2e%2e', 'mlp%2F1', '%00', '%ff', '%', 'mlp%20', 'mlp;x', '~', '%E2%80%AE') },
    { weight: 1, arbitrary: fc.integer({ min: 100, max: 20_000 }).map((n) => 'm'.repeat(n)) },
  );
}
