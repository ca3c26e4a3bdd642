/**
 * OpenAI-compatible inputs: POST /v1/completions and /v1/chat/completions bodies for tiny-lm with 1-4 new
 * tokens, plain or streamed, then faults: wrong types, unsupported parameters (n, logprobs, tools, echo...),
 * prompts as token ids past the vocabulary, content parts, unknown roles, non-finite sampling values (which
 * JSON can only spell as huge literals), and the body-level faults of gen-http.ts; GET /v1/models too.
 */
import fc from 'fast-check';
import type { Case } from './case';
import { BAD_UTF8_MARK, sometimes } from './gen-common';
import { contentTypeArb, extraHeadersArb, httpCase, mutateObjectArb, serialiseArb, wrongTypeArb } from './gen-http';
import { GENERATION_MODEL, MODEL_NAMES, VOCAB_SIZE } from './models';

const textArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('In the beginning', 'And the earth', 'light') },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
  { weight: 1, arbitrary: fc.constant(`x ${BAD_UTF8_MARK}`) },
  { weight: 1, arbitrary: fc.integer({ min: 600, max: 3000 }).map((n) => 'word '.repeat(n)) },
);

const numberArb = fc.oneof(fc.double({ min: -3, max: 3, noNaN: true }), fc.constantFrom(0, 1, -1, 1e308, -1e308, 2, 100, 101));
const optional = <T>(arb: fc.Arbitrary<T>) => sometimes(arb, 6);

const samplingArb = fc.record(
  {
    model: fc.oneof({ weight: 12, arbitrary: fc.constant(GENERATION_MODEL) }, { weight: 1, arbitrary: fc.constantFrom(...MODEL_NAMES, '', 'gpt-4', BAD_UTF8_MARK) }),
    max_tokens: fc.oneof({ weight: 20, arbitrary: fc.integer({ min: 1, max: 4 }) }, { weight: 1, arbitrary: fc.constantFrom(0, -1, 449, 1.5, 2 ** 53) }),
    temperature: optional(numberArb),
    top_p: optional(numberArb),
    top_k: optional(fc.oneof(fc.integer({ min: -2, max: 50 }), fc.constant(2 ** 31))),
    min_p: optional(numberArb),
    repetition_penalty: optional(numberArb),
    presence_penalty: optional(numberArb),
    frequency_penalty: optional(numberArb),
    stop: optional(fc.oneof(fc.string({ maxLength: 5 }), fc.array(fc.string({ maxLength: 5 }), { maxLength: 10 }), fc.constant('s'.repeat(200)))),
    stop_token_ids: optional(fc.array(fc.oneof(fc.nat(VOCAB_SIZE + 10), fc.constant(-1)), { maxLength: 4 })),
    seed: optional(fc.oneof(fc.nat(), fc.constantFrom(-1, 2 ** 53, 2 ** 64, 1.5))),
    ignore_eos: optional(fc.boolean()),
    stream: fc.oneof({ weight: 2, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    stream_options: optional(fc.constantFrom<unknown>({ include_usage: true }, { include_usage: 'yes' }, {})),
    n: optional(fc.constantFrom(1, 2)),
    logprobs: optional(fc.constantFrom<unknown>(false, true, null, 5)),
    user: optional(fc.string({ maxLength: 5 })),
  },
  { requiredKeys: ['model', 'max_tokens', 'stream'] },
);

const completionArb = fc
  .tuple(
    samplingArb,
    fc.oneof(
      { weight: 6, arbitrary: textArb },
      { weight: 1, arbitrary: fc.array(textArb, { maxLength: 2 }) },
      { weight: 1, arbitrary: fc.array(fc.oneof(fc.nat(VOCAB_SIZE - 1), fc.constantFrom(-1, VOCAB_SIZE, 2 ** 53)), { maxLength: 10 }) },
    ),
    fc.record({ echo: optional(fc.boolean()), best_of: optional(fc.constantFrom(1, 2)), suffix: optional(fc.constantFrom(null, 'x')), logit_bias: optional(fc.constantFrom({}, { '1': 2 })) }, { requiredKeys: [] }),
  )
  .map(([s, prompt, extra]) => ({ ...s, prompt, ...extra }));

const contentArb = fc.oneof(
  { weight: 6, arbitrary: textArb },
  { weight: 1, arbitrary: fc.array(fc.oneof(textArb.map((text) => ({ type: 'text', text })), fc.constant({ type: 'image_url', image_url: { url: 'x' } })), { maxLength: 3 }) },
);

const chatArb = fc
  .tuple(
    samplingArb,
    fc.array(
      fc.record({
        role: fc.oneof({ weight: 8, arbitrary: fc.constantFrom('system', 'user', 'assistant', 'developer') }, { weight: 1, arbitrary: fc.constantFrom('tool', '', 'USER') }),
        content: contentArb,
      }),
      { minLength: 0, maxLength: 4 },
    ),
    fc.record(
      {
        max_completion_tokens: optional(fc.oneof(fc.integer({ min: 1, max: 4 }), fc.constant(0))),
        response_format: optional(fc.constantFrom<unknown>({ type: 'text' }, { type: 'json_object' })),
        tools: optional(fc.constantFrom<unknown>([], [{ type: 'function' }])),
        tool_choice: optional(fc.constantFrom('none', 'auto')),
      },
      { requiredKeys: [] },
    ),
  )
  .map(([s, messages, extra]) => ({ ...s, messages, ...extra }));

/** Drop undefined values (fc's optional keys) so JSON.stringify and the server see absent keys. */
const defined = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

function bodyCase(path: string, body: fc.Arbitrary<Record<string, unknown>>): fc.Arbitrary<Case> {
  return fc
    .tuple(
      body.map(defined),
      fc.oneof({ weight: 8, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
      fc.oneof({ weight: 12, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
      wrongTypeArb,
      contentTypeArb,
      extraHeadersArb,
    )
    .chain(([b, mutate, retypeMessages, wrong, contentType, headers]) =>
      (mutate ? mutateObjectArb(b) : fc.constant(retypeMessages && 'messages' in b ? { ...b, messages: [wrong] } : b))
        .chain(serialiseArb)
        .map((bytes) => httpCase('POST', path, bytes, contentType, headers)),
    );
}

export const completionsArb: fc.Arbitrary<Case> = bodyCase('/v1/completions', completionArb);
export const chatCompletionsArb: fc.Arbitrary<Case> = fc.oneof(
  { weight: 30, arbitrary: bodyCase('/v1/chat/completions', chatArb) },
  { weight: 1, arbitrary: fc.constantFrom('/v1/models', '/v1/models/x', '/v1/', '/v1/chat').map((p) => httpCase('GET', p, Buffer.alloc(0), undefined, {})) },
);
