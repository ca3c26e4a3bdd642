// Trains the byte-level BPE tokenizer with Hugging Face `tokenizers` (npm, Rust
// binding), writes tokenizer.json + tokenizer_config.json into the model folder,
// checks that the pure-JS @huggingface/tokenizers encodes/decodes identically,
// and writes the token-id corpus that train.py reads.
//
//   node train_tokenizer.mjs [DATA_DIR] [MODEL_DIR]
//   env: TOK_TOOLS (folder with node_modules/tokenizers and
//        node_modules/@huggingface/tokenizers; default /tmp/tok-tools), VOCAB_SIZE (default 4096)
//
// The npm binding's Tokenizer.train(files) always uses the library's default
// BpeTrainer (vocab_size 30000, no special tokens): on the KJV it stops by itself
// at ~21k tokens (every word whole). BPE training is greedy, one merge at a time
// in a deterministic order, so the first K merges it learned are exactly what a
// training run with a smaller vocab_size learns; we keep the first
// VOCAB_SIZE - 3 - 256 merges, and lay the vocabulary out as
// 3 special tokens, the 256 byte symbols (any UTF-8 text encodes), then the
// merge results in merge order (the GPT-2 layout).
import { createRequire } from 'module';
import fs from 'fs';
import path from 'path';

const DATA = process.argv[2] || '/tmp/tiny-lm-data';
const MODEL_DIR = process.argv[3] || new URL('./out/tiny-lm', import.meta.url).pathname;
const TOK_TOOLS = process.env.TOK_TOOLS || '/tmp/tok-tools';
const VOCAB_SIZE = Number(process.env.VOCAB_SIZE || 4096);
const require = createRequire(path.join(TOK_TOOLS, 'package.json'));
const tk = require('tokenizers');
const hf = await import(path.join(TOK_TOOLS, 'node_modules/@huggingface/tokenizers/dist/tokenizers.mjs'));

const SPECIALS = ['<pad>', '<s>', '</s>'];
const [PAD, BOS, EOS] = [0, 1, 2];
const TEXT = path.join(DATA, 'kjv.txt');

// 1. library training
const trainer = new tk.Tokenizer(tk.BPE.empty());
trainer.setPreTokenizer(tk.byteLevelPreTokenizer(false, true));
let t0 = Date.now();
trainer.train([TEXT]);
trainer.save(path.join(DATA, 'tokenizer-full.json'));
const trained = JSON.parse(fs.readFileSync(path.join(DATA, 'tokenizer-full.json'), 'utf8'));
console.log(`trained in ${Date.now() - t0} ms: ${Object.keys(trained.model.vocab).length} tokens, ${trained.model.merges.length} merges`);

// 2. GPT-2 byte <-> symbol table, byte order
const bs = [];
for (let b = 33; b <= 126; b++) bs.push(b);
for (let b = 161; b <= 172; b++) bs.push(b);
for (let b = 174; b <= 255; b++) bs.push(b);
const cs = bs.slice();
let n = 0;
for (let b = 0; b < 256; b++) if (!bs.includes(b)) { bs.push(b); cs.push(256 + n++); }
const byteSym = new Array(256);
bs.forEach((b, i) => { byteSym[b] = String.fromCodePoint(cs[i]); });
const alpha = new Set(tk.byteLevelAlphabet());
if (alpha.size !== 256 || !byteSym.every((s) => alpha.has(s))) throw new Error('byte alphabet mismatch');

const vocab = {};
SPECIALS.forEach((s, i) => { vocab[s] = i; });
byteSym.forEach((s) => { vocab[s] = Object.keys(vocab).length; });
const K = VOCAB_SIZE - SPECIALS.length - 256;
const merges = trained.model.merges.slice(0, K).map((m) => (Array.isArray(m) ? m : m.split(' ')));
for (const [a, b] of merges) {
  if (!(a in vocab) || !(b in vocab)) throw new Error(`merge part missing: ${a} ${b}`);
  if (a + b in vocab) throw new Error(`duplicate merge result ${a + b}`);
  vocab[a + b] = Object.keys(vocab).length;
}
if (Object.keys(vocab).length !== VOCAB_SIZE) throw new Error('vocab size');

const tokJson = {
  version: '1.0',
  truncation: null,
  padding: null,
  added_tokens: SPECIALS.map((s, i) => ({
    id: i, content: s, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
  })),
  normalizer: null,
  pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
  post_processor: {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [
      { SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
      { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } },
    ],
    special_tokens: { '<s>': { id: '<s>', ids: [BOS], tokens: ['<s>'] } },
  },
  decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
  model: {
    type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
    fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges,
  },
};
fs.mkdirSync(MODEL_DIR, { recursive: true });
fs.writeFileSync(path.join(MODEL_DIR, 'tokenizer.json'), JSON.stringify(tokJson));

// Starts with the bos token, as the model saw every verse during training: a chat is rendered and then
// tokenised without special tokens (transformers' apply_chat_template and tensorgate alike).
const CHAT_TEMPLATE =
  "{{ bos_token }}" +
  "{% for message in messages %}" +
  "{% if message['role'] == 'system' %}{{ message['content'] }}\n" +
  "{% elif message['role'] == 'user' %}User: {{ message['content'] }}\n" +
  "{% else %}Assistant: {{ message['content'] }}\n{% endif %}" +
  "{% endfor %}" +
  "{% if add_generation_prompt %}Assistant:{% endif %}";
const tokConfig = {
  tokenizer_class: 'PreTrainedTokenizerFast',
  bos_token: '<s>',
  eos_token: '</s>',
  pad_token: '<pad>',
  unk_token: null,
  add_bos_token: true,
  add_eos_token: false,
  model_max_length: Number(process.env.MODEL_MAX_LENGTH || 512),
  padding_side: 'left',
  clean_up_tokenization_spaces: false,
  chat_template: CHAT_TEMPLATE,
  added_tokens_decoder: Object.fromEntries(SPECIALS.map((s, i) => [String(i), {
    content: s, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true,
  }])),
};
fs.writeFileSync(path.join(MODEL_DIR, 'tokenizer_config.json'), JSON.stringify(tokConfig, null, 2) + '\n');

// 3. the library (Rust) and the pure-JS tokenizer must agree, and round-trip
const rust = tk.Tokenizer.fromFile(path.join(MODEL_DIR, 'tokenizer.json'));
const js = new hf.Tokenizer(tokJson, tokConfig);
const text = fs.readFileSync(TEXT, 'utf8');
const chapters = text.split('\n\n').map((c) => c.split('\n'));
const verses = chapters.flat();
const probes = [
  'And God said, Let there be light: and there was light.',
  'naïve café — “quoted” 日本語 Ünïcödé 🙂 e\u0301',
  '  leading and  double spaces\n\nnew lines\ttab ',
  'User: Who was Moses?\nAssistant:',
  '1234567890 {}[]<>|\\/~`@#$%^&*_+=',
  verses[0], verses[verses.length - 1],
];
let mism = 0, rt = 0;
for (const s of probes.concat(verses.filter((_, i) => i % 97 === 0))) {
  const a = (await rust.encode(s)).getIds();
  const b = js.encode(s).ids;
  if (JSON.stringify(a) !== JSON.stringify(b)) { mism++; if (mism < 4) console.log('MISMATCH', s, a, b); }
  const da = await rust.decode(a, true);
  const db = js.decode(b, { skip_special_tokens: true });
  if (da !== s || db !== s) { rt++; if (rt < 4) console.log('ROUNDTRIP', JSON.stringify([s, da, db])); }
  if (a[0] !== BOS) throw new Error('no <s> prepended');
}
console.log(`tokenizer check: ${probes.length + Math.ceil(verses.length / 97)} strings, id mismatches ${mism}, round-trip failures ${rt}`);
console.log('example:', JSON.stringify(js.encode(probes[0]).tokens));
console.log('non-ASCII:', JSON.stringify(js.encode('café 🙂').tokens), js.encode('café 🙂').ids);
if (mism || rt) process.exit(1);

// 4. corpus as token ids: per chapter <s> verse \n verse \n ... verse </s>
const NL = (await rust.encode('\n', null, { addSpecialTokens: false })).getIds();
if (NL.length !== 1) throw new Error('newline is not one token');
const ids = [];
const meta = { vocab_size: VOCAB_SIZE, bos: BOS, eos: EOS, pad: PAD, newline: NL[0], chapters: [] };
let nbytes = 0, nwords = 0;
for (const ch of chapters) {
  const enc = await rust.encodeBatch(ch, { addSpecialTokens: false });
  const c = { start: ids.length, verse_starts: [], bytes: Buffer.byteLength(ch.join('\n')) };
  ids.push(BOS);
  enc.forEach((e, i) => {
    c.verse_starts.push(ids.length);
    ids.push(...e.getIds());
    ids.push(i === enc.length - 1 ? EOS : NL[0]);
  });
  c.end = ids.length;
  meta.chapters.push(c);
  nbytes += c.bytes;
  nwords += ch.join(' ').split(/\s+/).length;
}
fs.writeFileSync(path.join(DATA, 'tokens.bin'), Buffer.from(new Uint16Array(ids).buffer));
meta.n_tokens = ids.length;
meta.n_bytes = nbytes;
fs.writeFileSync(path.join(DATA, 'tokens.json'), JSON.stringify(meta));
console.log(`corpus: ${ids.length} tokens, ${nbytes} bytes, ${(nbytes / ids.length).toFixed(2)} bytes/token, ${(ids.length / nwords).toFixed(3)} tokens/word`);
