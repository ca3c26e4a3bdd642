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
  // None open. Fixed so far: map-entry-without-value (src/api/grpc/lenient-decode.ts), subnormal-repetition-penalty
  // (src/generation/sampling.ts); their tests are in test/fuzz-regressions.test.ts.
];

/** The known finding a message is, if any. */
export function knownFinding(message: string): KnownFinding | undefined {
  return KNOWN_FINDINGS.find((f) => f.message.test(message));
}
