/**
 * Tokens of the protobuf text format (what Triton's config.pbtxt is written in), each with its line and
 * column so every parse error can point at the character a person has to fix.
 *
 * Covers: `#` comments to the end of the line; identifiers; numbers (decimal, hex, octal, floats with an
 * exponent and an optional f suffix); strings in '…' or "…" with C escapes (\n \t \\ \' \" \xHH \NNN \uXXXX
 * \UXXXXXXXX), decoded from bytes as UTF-8; and the punctuation { } < > [ ] : , ; -.
 */

export type TokenKind = 'ident' | 'number' | 'string' | 'punct' | 'eof';

export interface Token {
  kind: TokenKind;
  /** Identifier or punctuation text, the number as written, or the decoded string. */
  text: string;
  line: number;
  col: number;
}

export class PbtxtError extends Error {
  constructor(message: string, readonly file: string, readonly line: number, readonly col: number, hint?: string) {
    super(`${message} at ${file}:${line}:${col}${hint ? ` (${hint})` : ''}`);
    this.name = 'PbtxtError';
  }
}

const PUNCT = new Set(['{', '}', '<', '>', '[', ']', ':', ',', ';', '-']);
const SIMPLE_ESCAPES: Record<string, number> = { n: 10, t: 9, r: 13, a: 7, b: 8, f: 12, v: 11, '\\': 92, "'": 39, '"': 34, '?': 63 };
const NUMBER = /^(0[xX][0-9a-fA-F]+|(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?[fF]?)/;

export function tokenize(text: string, file: string): Token[] {
  const tokens: Token[] = [];
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;
  let lineStart = 0;
  const fail = (message: string, at: number): never => {
    throw new PbtxtError(message, file, line, at - lineStart + 1);
  };
  while (i < text.length) {
    const c = text[i];
    if (c === '\n') {
      i++;
      line++;
      lineStart = i;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r' || c === '\f' || c === '\v') {
      i++;
      continue;
    }
    if (c === '#') {
      while (i < text.length && text[i] !== '\n') i++;
      continue;
    }
    const col = i - lineStart + 1;
    if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i, i + 256))!;
      tokens.push({ kind: 'ident', text: m[0], line, col });
      i += m[0].length;
      continue;
    }
    if (/[0-9.]/.test(c)) {
      const m = NUMBER.exec(text.slice(i, i + 512));
      if (!m) fail(`unexpected '${c}'`, i);
      const after = text[i + m![0].length];
      if (after !== undefined && /[A-Za-z0-9_.]/.test(after)) fail(`malformed number '${text.slice(i, i + m![0].length + 1)}'`, i);
      tokens.push({ kind: 'number', text: m![0], line, col });
      i += m![0].length;
      continue;
    }
    if (c === '"' || c === "'") {
      const start = i;
      const bytes: number[] = [];
      i++;
      for (;;) {
        if (i >= text.length || text[i] === '\n') fail(`unterminated string (opened with ${c})`, start);
        const ch = text[i];
        if (ch === c) {
          i++;
          break;
        }
        if (ch !== '\\') {
          const cp = text.codePointAt(i)!;
          bytes.push(...Buffer.from(String.fromCodePoint(cp), 'utf8'));
          i += cp > 0xffff ? 2 : 1;
          continue;
        }
        i = readEscape(text, i, bytes, (m, at) => fail(m, at));
      }
      tokens.push({ kind: 'string', text: Buffer.from(bytes).toString('utf8'), line, col });
      continue;
    }
    if (PUNCT.has(c)) {
      tokens.push({ kind: 'punct', text: c, line, col });
      i++;
      continue;
    }
    fail(`unexpected character '${c}'`, i);
  }
  tokens.push({ kind: 'eof', text: '', line, col: i - lineStart + 1 });
  return tokens;
}

/** Reads the escape at text[i] (a backslash), appends its bytes, returns the index after it. */
function readEscape(text: string, i: number, bytes: number[], fail: (message: string, at: number) => never): number {
  const e = text[i + 1];
  if (e === undefined || e === '\n') fail('unterminated string (backslash at the end of the line)', i);
  if (e in SIMPLE_ESCAPES) {
    bytes.push(SIMPLE_ESCAPES[e]);
    return i + 2;
  }
  if (/[0-7]/.test(e)) {
    const m = /^[0-7]{1,3}/.exec(text.slice(i + 1, i + 4))!;
    const value = parseInt(m[0], 8);
    if (value > 255) fail(`octal escape \\${m[0]} is above \\377`, i);
    bytes.push(value);
    return i + 1 + m[0].length;
  }
  if (e === 'x' || e === 'X') {
    const m = /^[0-9a-fA-F]{1,2}/.exec(text.slice(i + 2, i + 4));
    if (!m) fail('\\x needs one or two hex digits', i);
    bytes.push(parseInt(m![0], 16));
    return i + 2 + m![0].length;
  }
  if (e === 'u' || e === 'U') {
    const n = e === 'u' ? 4 : 8;
    const hex = text.slice(i + 2, i + 2 + n);
    if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(hex)) fail(`\\${e} needs ${n} hex digits`, i);
    const cp = parseInt(hex, 16);
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) fail(`\\${e}${hex} is not a Unicode scalar value`, i);
    bytes.push(...Buffer.from(String.fromCodePoint(cp), 'utf8'));
    return i + 2 + n;
  }
  return fail(`unknown escape '\\${e}'`, i);
}
