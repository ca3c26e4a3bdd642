/**
 * Findings the fuzzer reported whose fix lies outside the code this harness may change (another engineer owns
 * those files): each is matched narrowly, by the exact message it produces, so the run stays green on them and
 * still fails on anything else. Each has a todo test in test/fuzz-regressions.test.ts with its reproduction;
 * remove the entry here when that test passes.
 */
export interface KnownFinding {
  id: string;
  /** Where the fix belongs. */
  fix: string;
  /** The message (status details, stream error_message or OpenAI error message) this finding produces. */
  message: RegExp;
}

export const KNOWN_FINDINGS: readonly KnownFinding[] = [
  {
    id: 'map-entry-without-value',
    fix: 'src/api/grpc/protos.ts guardedServiceDefinition: a ModelInferRequest whose parameters map has an entry without a value decodes (protobufjs) to a null value, which toObject then reads; the valid message is refused as undecodable with a TypeError text',
    message: /^the request \(\d+ bytes\) is not a valid inference\.GRPCInferenceService\/Model(Stream)?Infer request message: Cannot read properties of null \(reading '(bool|int64|string|double|uint64)_param'\)$/,
  },
  {
    id: 'subnormal-repetition-penalty',
    fix: 'src/generation (generate-request.ts validation or sampling.ts): a repetition_penalty in (0, ~1e-300] turns logits into infinities; with min_p > 0 every token is filtered out (NaN probabilities), the sampler yields no token id and decoding throws: HTTP 500, the internal error event of a stream, or gRPC INTERNAL',
    message: /^generation failed: token_ids must be a non-empty array of integers\.?$/,
  },
];

/** The known finding a message is, if any. */
export function knownFinding(message: string): KnownFinding | undefined {
  return KNOWN_FINDINGS.find((f) => f.message.test(message));
}
