/**
 * tensorgate.v1.ModelService/Generate inputs (server streaming) against tiny-lm: a prompt, token ids or chat
 * messages with 1-4 new tokens (so each input stays cheap), then faults: none or several prompt forms, ids past
 * the vocabulary or 2^53, non-finite and out-of-range sampling values, huge seeds and timeouts, many and long
 * stop strings, unknown roles, invalid UTF-8.
 */
import fc from 'fast-check';
import { b64, type Case } from './case';
import { BAD_UTF8_MARK, floatArb, nameArb, sometimes } from './gen-common';
import { GENERATION_MODEL, MODEL_NAMES, VOCAB_SIZE } from './models';
import { bodyArb, deadlineArb } from './wire';

const PATH = '/tensorgate.v1.ModelService/Generate';

const tokenIdArb = fc.oneof(
  { weight: 10, arbitrary: fc.integer({ min: 0, max: VOCAB_SIZE - 1 }).map(String) },
  { weight: 1, arbitrary: fc.constantFrom('-1', String(VOCAB_SIZE), '2147483648', '9007199254740993', '-9223372036854775808', '9223372036854775807') },
);

const textArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('In the beginning', 'And God said', 'Let there be light', 'the') },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 24 }) },
  { weight: 1, arbitrary: fc.constant(`light ${BAD_UTF8_MARK}`) },
  { weight: 1, arbitrary: fc.integer({ min: 2000, max: 9000 }).map((n) => 'word '.repeat(n)) },
);

const messageArb = fc.record({
  role: fc.oneof({ weight: 6, arbitrary: fc.constantFrom('system', 'user', 'assistant') }, { weight: 1, arbitrary: fc.constantFrom('', 'tool', 'developer', 'USER', BAD_UTF8_MARK) }),
  content: textArb,
});

/** Sometimes a sampling field is sent (proto3 optional), with a value from all over its type. */
const maybe = <T>(arb: fc.Arbitrary<T>) => sometimes(arb, 5);

const requestArb: fc.Arbitrary<Record<string, unknown>> = fc
  .record({
    model: nameArb([GENERATION_MODEL, GENERATION_MODEL, ...MODEL_NAMES], 20),
    version: fc.oneof({ weight: 10, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.constantFrom('1', '2', 'x') }),
    prompt: fc.oneof({ weight: 3, arbitrary: textArb.map((p) => ({ prompt: p })) }, { weight: 1, arbitrary: fc.constant({}) }),
    ids: fc.oneof({ weight: 4, arbitrary: fc.constant({}) }, { weight: 1, arbitrary: fc.array(tokenIdArb, { maxLength: 12 }).map((ids) => ({ prompt_token_ids: ids })) }),
    messages: fc.oneof({ weight: 4, arbitrary: fc.constant({}) }, { weight: 1, arbitrary: fc.array(messageArb, { minLength: 1, maxLength: 4 }).map((m) => ({ messages: m })) }),
    // Small so each input costs a few decode steps; 0 (the model's default, 64) and past the limit rarely.
    max_tokens: fc.oneof({ weight: 30, arbitrary: fc.integer({ min: 1, max: 4 }) }, { weight: 1, arbitrary: fc.constantFrom(0, 449, 4294967295) }),
    temperature: maybe(fc.oneof(floatArb, fc.constantFrom(0, 100, 101, -1))),
    top_k: maybe(fc.oneof(fc.integer({ min: -5, max: 50 }), fc.constantFrom(-2147483648, 2147483647))),
    top_p: maybe(fc.oneof(floatArb, fc.constantFrom(0, 1, 1.5))),
    min_p: maybe(floatArb),
    repetition_penalty: maybe(fc.oneof(floatArb, fc.constantFrom(0, 1, 10, 11))),
    repeat_last_n: maybe(fc.oneof(fc.nat(600), fc.constant(4294967295))),
    presence_penalty: maybe(fc.oneof(floatArb, fc.constantFrom(-2, 2, 3))),
    frequency_penalty: maybe(fc.oneof(floatArb, fc.constantFrom(-2, 2, -3))),
    stop: maybe(
      fc.array(fc.oneof(fc.string({ maxLength: 6 }), fc.constant(''), fc.constant('s'.repeat(129)), fc.constant(BAD_UTF8_MARK)), { maxLength: 10 }),
    ),
    stop_token_ids: maybe(fc.array(tokenIdArb, { maxLength: 5 })),
    seed: maybe(fc.constantFrom('0', '1', '42', '9007199254740993', '18446744073709551615')),
    ignore_eos: fc.boolean(),
    options: maybe(fc.record({ request_id: fc.string({ maxLength: 8 }), timeout_us: fc.constantFrom('0', '1', '50000', '18446744073709551615') })),
  })
  .map(({ prompt, ids, messages, ...r }) => {
    const out: Record<string, unknown> = { ...prompt, ...ids, ...messages };
    for (const [k, v] of Object.entries(r)) if (v !== undefined) out[k] = v;
    return out;
  });

export const generateArb: fc.Arbitrary<Case> = fc
  .tuple(bodyArb('tensorgate.v1.GenerateRequest', requestArb), deadlineArb)
  .map(([body, deadlineMs]) => ({ kind: 'grpc-server-stream', path: PATH, body: b64(body), ...(deadlineMs !== undefined ? { deadlineMs } : {}) }));
