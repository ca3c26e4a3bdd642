/**
 * Turns a sequence's generated tokens into the text its stream may show, one token at a time:
 *
 * - Incremental detokenisation (the offsets scheme TGI and vLLM use): each new token's text is the
 *   decoding of a short window of recent tokens minus the window's known prefix, so tokenizers whose text
 *   depends on neighbours (leading spaces, merges) decode as a whole-sequence decode would. A window that
 *   ends in U+FFFD is a character split across byte tokens: it is held back until the bytes are complete,
 *   so every piece of text sent is whole UTF-8 characters.
 * - Stop strings, matched on the decoded text across token boundaries: text that could be the start of a
 *   stop string is held back until it is resolved, and a stop string never reaches the client.
 */
export type Decode = (ids: readonly number[]) => string;

export interface TextStep {
  /** Text that may be sent now (possibly empty). */
  text: string;
  /** A stop string matched: `text` ends right before it, and the sequence is over. */
  stopped: boolean;
}

const REPLACEMENT = '\uFFFD';

export class TextStream {
  private readonly tokens: number[] = [];
  /** Start of the decode window, and where the text already produced from it ends. */
  private prefixOffset = 0;
  private readOffset = 0;
  /** Decoded text not yet sent: a possible start of a stop string. */
  private pending = '';
  private readonly longestStop: number;

  constructor(
    private readonly decode: Decode,
    private readonly stops: readonly string[],
  ) {
    this.longestStop = stops.reduce((n, s) => Math.max(n, s.length), 0);
  }

  /** Adds one generated token; returns the text it releases. */
  push(token: number): TextStep {
    this.tokens.push(token);
    const prefix = this.decode(this.tokens.slice(this.prefixOffset, this.readOffset));
    const whole = this.decode(this.tokens.slice(this.prefixOffset));
    if (whole.length <= prefix.length || whole.endsWith(REPLACEMENT)) return { text: '', stopped: false };
    const delta = whole.slice(prefix.length);
    this.prefixOffset = this.readOffset;
    this.readOffset = this.tokens.length;
    return this.release(delta);
  }

  /** At the end of the sequence (not a stop): everything held back, including an incomplete character's U+FFFD. */
  finish(): string {
    let rest = this.pending;
    this.pending = '';
    if (this.readOffset < this.tokens.length) {
      const prefix = this.decode(this.tokens.slice(this.prefixOffset, this.readOffset));
      rest += this.decode(this.tokens.slice(this.prefixOffset)).slice(prefix.length);
      this.readOffset = this.tokens.length;
    }
    return rest;
  }

  private release(delta: string): TextStep {
    if (this.stops.length === 0) return { text: delta, stopped: false };
    // Only a match that ends in the new text is new; it may start up to longestStop - 1 chars before it.
    const searchFrom = Math.max(0, this.pending.length - this.longestStop + 1);
    const text = this.pending + delta;
    let first = -1;
    for (const stop of this.stops) {
      const at = text.indexOf(stop, searchFrom);
      if (at >= 0 && (first < 0 || at < first)) first = at;
    }
    if (first >= 0) {
      this.pending = '';
      return { text: text.slice(0, first), stopped: true };
    }
    const hold = this.heldSuffix(text);
    this.pending = text.slice(text.length - hold);
    return { text: text.slice(0, text.length - hold), stopped: false };
  }

  /** The length of the longest suffix of `text` that is a proper prefix of some stop string. */
  private heldSuffix(text: string): number {
    for (let n = Math.min(this.longestStop - 1, text.length); n > 0; n--) {
      const tail = text.slice(text.length - n);
      if (this.stops.some((s) => s.startsWith(tail))) return n;
    }
    return 0;
  }
}
