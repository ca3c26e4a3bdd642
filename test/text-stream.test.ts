/**
 * What a Generate stream may show, token by token: whole UTF-8 characters only (a character split across
 * byte tokens is held back), stop strings matched across token boundaries and never shown, and text that
 * may begin a stop string held back until resolved. Uses the byte-level tokenizer of the gqa-decoder
 * fixture (ids 0..255 are bytes), so every non-ASCII character really does split across tokens.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { before, test } from 'node:test';
import { TextStream } from '../src/generation/text-stream';
import { TextTokenizer } from '../src/generation/text-tokenizer';
import { PACKAGE_ROOT } from './common';

let tokenizer: TextTokenizer;
before(async () => {
  tokenizer = await TextTokenizer.load(path.join(PACKAGE_ROOT, 'test/fixtures/models/gqa-decoder'));
});

const bytes = (text: string) => [...Buffer.from(text, 'utf8')];

/** Pushes every token; returns the pieces released and whether/where a stop matched. */
function stream(tokens: number[], stops: string[] = []) {
  const s = new TextStream((ids) => tokenizer.decode(ids), stops);
  const pieces: string[] = [];
  for (const t of tokens) {
    const step = s.push(t);
    pieces.push(step.text);
    if (step.stopped) return { pieces, stopped: true };
  }
  pieces.push(s.finish());
  return { pieces, stopped: false };
}

test('the fixture tokenizer is byte-level: a multi-byte character is several tokens', () => {
  assert.deepEqual(tokenizer.encode('é', false), [0xc3, 0xa9]);
  assert.equal(tokenizer.decode([0xc3]), '\uFFFD');
});

test('a character split across byte tokens is held back until complete; every piece is whole characters', () => {
  const text = 'héllo wörld ✓ 日本 🎉!';
  const { pieces } = stream(bytes(text));
  assert.equal(pieces.join(''), text);
  for (const p of pieces) {
    assert.ok(!p.includes('\uFFFD'), `piece ${JSON.stringify(p)} has a replacement character`);
    assert.equal(Buffer.from(p, 'utf8').toString('utf8'), p); // no lone surrogates
  }
  // the 4 bytes of the emoji release nothing until the last
  const emoji = bytes('🎉');
  const { pieces: e } = stream(emoji);
  assert.deepEqual(e.slice(0, 3), ['', '', '']);
  assert.equal(e[3], '🎉');
});

test('an incomplete character at the end of the sequence is flushed as U+FFFD, not dropped silently', () => {
  const { pieces } = stream([...bytes('ok '), 0xe2, 0x9c]);
  assert.equal(pieces.join(''), 'ok \uFFFD');
});

test('a stop string split across tokens stops the stream and never reaches it', () => {
  const { pieces, stopped } = stream(bytes('Hello, World! STOP here'), ['STOP']);
  assert.equal(stopped, true);
  assert.equal(pieces.join(''), 'Hello, World! ');
  assert.ok(!pieces.some((p) => p.includes('S')), 'no part of the stop string is released');
});

test('text that may begin a stop string is held back until resolved, then released', () => {
  const s = new TextStream((ids) => tokenizer.decode(ids), ['<end>']);
  const released = bytes('a<en').map((t) => s.push(t).text);
  assert.deepEqual(released, ['a', '', '', '']); // '<', '<e', '<en' may begin '<end>'
  assert.equal(s.push(bytes('x')[0]!).text, '<enx'); // resolved: not a stop
  assert.equal(s.finish(), '');
});

test('the earliest of several stop strings wins, even one starting in held-back text', () => {
  const { pieces, stopped } = stream(bytes('abc##def'), ['def', '##']);
  assert.equal(stopped, true);
  assert.equal(pieces.join(''), 'abc');
});

test('a stop string made of multi-byte characters matches across byte tokens', () => {
  const { pieces, stopped } = stream(bytes('go 日本 more'), ['日本']);
  assert.equal(stopped, true);
  assert.equal(pieces.join(''), 'go ');
});

test('text held back at the end (a partial stop string) is flushed when the sequence ends otherwise', () => {
  const { pieces, stopped } = stream(bytes('done <en'), ['<end>']);
  assert.equal(stopped, false);
  assert.equal(pieces.join(''), 'done <en');
});
