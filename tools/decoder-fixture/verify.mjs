// Checks test/fixtures/models/gqa-decoder (built by build.py) with onnxruntime-node:
//   tokenizer: byte-level round trip, prefixes that split a character, specials, chat template
//   (a) greedy decoding with the KV cache == greedy decoding without it (recompute), 30 steps
//   (b) two prompts of different lengths, batched with LEFT padding == each prompt alone
//   (c) transformers.js 4.3.1 loads the folder and its greedy generate matches ours
// Usage (from the repository root; transformers.js lives outside the repo):
//   (transformers.js comes from the repository's dev dependencies; TFJS_DIR=DIR uses another install)
//   nice -n 10 node tools/decoder-fixture/verify.mjs            # TFJS_DIR defaults to the repository
// Exits non-zero when a check fails (transformers.js missing is reported and skipped).
import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MODEL_DIR = path.join(REPO, 'test', 'fixtures', 'models', 'gqa-decoder');
const MODEL_FILE = path.join(MODEL_DIR, '1', 'model.onnx');
// transformers.js is a dev dependency of the repository; TFJS_DIR may point at another install.
const TFJS_DIR = process.env.TFJS_DIR ?? REPO;
const STEPS = 30;
const LAYERS = 2, KV_HEADS = 2, HEAD_DIM = 8;
const BOS = 256, EOS = 257, PAD = 258;
// The torch reference greedy continuation of "Hello" (no bos), printed by build.py.
const EXPECTED_HELLO = [19, 120, 70, 97, 120, 199, 218, 109, 90, 218, 253, 173, 229, 34, 100, 154, 44,
  219, 173, 229, 53, 34, 36, 185, 142, 17, 209, 79, 95, 218];

const repoRequire = createRequire(path.join(REPO, 'package.json'));
const tfjsRequire = createRequire(path.join(TFJS_DIR, 'package.json'));
const ort = repoRequire('onnxruntime-node');

let failures = 0;
function check(name, ok, detail = '') {
  console.log(`${ok ? 'PASS' : 'FAIL'} ${name}${detail ? ': ' + detail : ''}`);
  if (!ok) failures++;
}
const eq = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const PAST = [];
for (let i = 0; i < LAYERS; i++) for (const kv of ['key', 'value']) PAST.push(`${i}.${kv}`);

// ---------------------------------------------------------------------------------------------
// Tokenizer (@huggingface/tokenizers, pure JS): from the repo's node_modules, else TFJS_DIR's
function loadTokenizersLib() {
  for (const req of [repoRequire, tfjsRequire]) {
    try { return req('@huggingface/tokenizers'); } catch { /* next */ }
  }
  throw new Error('@huggingface/tokenizers not found in the repo or in ' + TFJS_DIR);
}
const { Tokenizer } = loadTokenizersLib();
const tokJson = JSON.parse(fs.readFileSync(path.join(MODEL_DIR, 'tokenizer.json'), 'utf8'));
const tokCfg = JSON.parse(fs.readFileSync(path.join(MODEL_DIR, 'tokenizer_config.json'), 'utf8'));
const tok = new Tokenizer(tokJson, tokCfg);

console.log('== tokenizer (@huggingface/tokenizers)');
const TEXT = 'héllo wörld ✓ 日本';
const bytes = [...new TextEncoder().encode(TEXT)];
const enc = tok.encode(TEXT).ids;
check('encode(text) is exactly its UTF-8 bytes, no specials', eq(enc, bytes), JSON.stringify(enc));
check('decode(encode(text)) round-trips', tok.decode(enc) === TEXT, JSON.stringify(tok.decode(enc)));
console.log('  decoding every prefix of those ids (a prefix that cuts a character is marked *):');
const utf8Boundary = (n) => n === bytes.length || (bytes[n] & 0xc0) !== 0x80;
const splitDecodes = new Set();
for (let n = 1; n <= enc.length; n++) {
  const s = tok.decode(enc.slice(0, n));
  const cut = !utf8Boundary(n);
  if (cut) {
    const fffd = [...s].filter((c) => c === '\uFFFD').length;
    splitDecodes.add(s.endsWith('\uFFFD') ? `ends with ${fffd} U+FFFD` : 'dropped (no U+FFFD)');
  }
  if (cut || n === enc.length) console.log(`   ${cut ? '*' : ' '} ${String(n).padStart(2)} ids -> ${JSON.stringify(s)}`);
}
console.log(`  every prefix that cuts a character: ${[...splitDecodes].join(' / ')}`);
const withSpecials = tok.encode('<s>Hi</s>').ids;
check('special tokens in text map to their ids', eq(withSpecials, [BOS, 72, 105, EOS]), JSON.stringify(withSpecials));
check('decode skip_special_tokens drops them', tok.decode(withSpecials, { skip_special_tokens: true }) === 'Hi');
check('token ids of the specials', tok.token_to_id('<s>') === BOS && tok.token_to_id('</s>') === EOS && tok.token_to_id('<pad>') === PAD,
  `<s>=${tok.token_to_id('<s>')} </s>=${tok.token_to_id('</s>')} <pad>=${tok.token_to_id('<pad>')}`);

// ---------------------------------------------------------------------------------------------
// ONNX Runtime
const session = await ort.InferenceSession.create(MODEL_FILE, { intraOpNumThreads: 1, interOpNumThreads: 1 });
console.log('== session');
const meta = (list) => list.map((m) => `${m.name} ${m.type ?? '?'} [${(m.shape ?? []).join(', ')}]`);
console.log('  inputs:  ' + meta(session.inputMetadata).join('\n           '));
console.log('  outputs: ' + meta(session.outputMetadata).join('\n           '));

const i64 = (rows) => new ort.Tensor('int64', BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0].length]);
const emptyPast = (b) => new ort.Tensor('float16', new Uint16Array(0), [b, KV_HEADS, 0, HEAD_DIM]);

/** One decoder call. past: {'0.key': Tensor, ...} or null (then P = 0 tensors). */
async function step(ids, mask, past, useCache) {
  const b = ids.length;
  const feeds = { input_ids: i64(ids), attention_mask: i64(mask), use_cache_branch: new ort.Tensor('bool', new Uint8Array([useCache ? 1 : 0]), [1]) };
  for (const n of PAST) feeds[`past_key_values.${n}`] = past ? past[n] : emptyPast(b);
  const out = await session.run(feeds);
  const presents = {};
  for (const n of PAST) presents[n] = out[`present.${n}`];
  return { logits: out.logits, presents };
}

/** The last position's logits of row r. */
function lastLogits(logits, r) {
  const [, s, v] = logits.dims;
  const off = (r * s + s - 1) * v;
  return logits.data.subarray(off, off + v);
}
const argmax = (a) => { let best = 0; for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i; return best; };
const maxAbsDiff = (a, b) => { let m = 0; for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i])); return m; };

async function greedyCached(prompt, steps) {
  let mask = [prompt.map(() => 1)];
  let { logits, presents } = await step([prompt], mask, null, false);
  const toks = [];
  const lastRows = [];
  for (let t = 0; t < steps; t++) {
    const row = lastLogits(logits, 0);
    lastRows.push(Float32Array.from(row));
    const next = argmax(row);
    toks.push(next);
    if (t === steps - 1) break;
    mask = [[...mask[0], 1]];
    ({ logits, presents } = await step([[next]], mask, presents, true));
  }
  return { toks, lastRows, presents };
}

async function greedyRecompute(prompt, steps) {
  const ids = [...prompt];
  const toks = [];
  const lastRows = [];
  for (let t = 0; t < steps; t++) {
    const { logits } = await step([ids], [ids.map(() => 1)], null, false);
    const row = lastLogits(logits, 0);
    lastRows.push(Float32Array.from(row));
    const next = argmax(row);
    toks.push(next);
    ids.push(next);
  }
  return { toks, lastRows };
}

/** Greedy over a left-padded batch: pads get mask 0 (and the given pad id); one step per token. */
async function greedyBatch(prompts, steps, padId = PAD) {
  const len = Math.max(...prompts.map((p) => p.length));
  const ids = prompts.map((p) => [...Array(len - p.length).fill(padId), ...p]);
  let mask = prompts.map((p) => [...Array(len - p.length).fill(0), ...p.map(() => 1)]);
  let { logits, presents } = await step(ids, mask, null, false);
  const toks = prompts.map(() => []);
  const lastRows = prompts.map(() => []);
  for (let t = 0; t < steps; t++) {
    const next = prompts.map((_, r) => {
      const row = lastLogits(logits, r);
      lastRows[r].push(Float32Array.from(row));
      return argmax(row);
    });
    next.forEach((x, r) => toks[r].push(x));
    if (t === steps - 1) break;
    mask = mask.map((m) => [...m, 1]);
    ({ logits, presents } = await step(next.map((x) => [x]), mask, presents, true));
  }
  return { toks, lastRows, presents };
}

const HELLO = tok.encode('Hello').ids;
console.log(`== (a) cached vs recomputed greedy, prompt "Hello" = ${JSON.stringify(HELLO)} (no bos), ${STEPS} steps`);
const cached = await greedyCached(HELLO, STEPS);
const recomputed = await greedyRecompute(HELLO, STEPS);
console.log('  cached:     ' + JSON.stringify(cached.toks));
console.log('  recomputed: ' + JSON.stringify(recomputed.toks));
check('(a) cached == recomputed, token for token', eq(cached.toks, recomputed.toks),
  `max |logit diff| over the ${STEPS} steps ${Math.max(...cached.lastRows.map((r, i) => maxAbsDiff(r, recomputed.lastRows[i]))).toExponential(2)}`);
check('ONNX greedy == torch reference from build.py', eq(cached.toks, EXPECTED_HELLO));
check('present dims after the run', eq(cached.presents['0.key'].dims, [1, KV_HEADS, HELLO.length + STEPS - 1, HEAD_DIM]) && cached.presents['0.key'].type === 'float16',
  `${cached.presents['0.key'].type} [${cached.presents['0.key'].dims}]`);
const distinct = new Set(cached.toks).size;
check('greedy output is varied and has no </s> in the first 20 steps', distinct >= 5 && !cached.toks.slice(0, 20).includes(EOS),
  `${distinct} distinct of ${STEPS}; text ${JSON.stringify(tok.decode(cached.toks))}`);
const long = await greedyCached(HELLO, 64);
const firstEos = long.toks.indexOf(EOS);
check('</s> is reachable: greedy from "Hello" emits it later', firstEos >= 20, `first </s> at step ${firstEos + 1} of 64`);
let minMargin = Infinity;
for (const row of cached.lastRows) { const s = [...row].sort((x, y) => y - x); minMargin = Math.min(minMargin, s[0] - s[1]); }
console.log(`  smallest top1-top2 logit margin over the ${STEPS} steps: ${minMargin.toFixed(4)}`);

const PROMPT2 = tok.encode('Hi, tensorgate ✓ 日本').ids;
console.log(`== (b) left-padded batch: "Hello" (${HELLO.length} ids) + "Hi, tensorgate ✓ 日本" (${PROMPT2.length} ids), ${STEPS} steps`);
const alone2 = await greedyCached(PROMPT2, STEPS);
const batch = await greedyBatch([HELLO, PROMPT2], STEPS);
console.log('  batch row 0: ' + JSON.stringify(batch.toks[0]));
console.log('  batch row 1: ' + JSON.stringify(batch.toks[1]));
console.log('  alone 2:     ' + JSON.stringify(alone2.toks));
const diff0 = Math.max(...batch.lastRows[0].map((r, i) => maxAbsDiff(r, cached.lastRows[i])));
const diff1 = Math.max(...batch.lastRows[1].map((r, i) => maxAbsDiff(r, alone2.lastRows[i])));
check('(b) padded row 0 ("Hello") == alone', eq(batch.toks[0], cached.toks), `max |logit diff| ${diff0.toExponential(2)}`);
check('(b) row 1 == alone', eq(batch.toks[1], alone2.toks), `max |logit diff| ${diff1.toExponential(2)}`);
const batchOtherPad = await greedyBatch([HELLO, PROMPT2], 4, 65);
const padDiff = Math.max(...batchOtherPad.lastRows[0].map((r, i) => maxAbsDiff(r, batch.lastRows[0][i])));
check('(b) the pad token id does not matter (pads get no attention)', padDiff < 1e-5, `pad 258 vs 65: max |logit diff| ${padDiff.toExponential(2)}`);

// ---------------------------------------------------------------------------------------------
console.log('== (c) transformers.js');
let tf;
try {
  tf = await import(pathToFileURL(tfjsRequire.resolve('@huggingface/transformers')).href);
} catch (e) {
  console.log(`SKIP (c): @huggingface/transformers not installed under ${TFJS_DIR} (${e.message.split('\n')[0]})`);
}
if (tf) {
  const version = JSON.parse(fs.readFileSync(path.join(TFJS_DIR, 'node_modules', '@huggingface', 'transformers', 'package.json'), 'utf8')).version;
  console.log(`  @huggingface/transformers ${version}`);
  tf.env.allowRemoteModels = false;
  tf.env.allowLocalModels = true;
  // transformers.js looks for onnx/model.onnx (dtype fp32); give it that layout in a temp folder
  // (the JSON files plus a copy of 1/model.onnx) rather than committing a second copy.
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gqa-decoder-tfjs-'));
  const dir = path.join(tmp, 'gqa-decoder');
  fs.mkdirSync(path.join(dir, 'onnx'), { recursive: true });
  for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(MODEL_DIR, f), path.join(dir, f));
  fs.copyFileSync(MODEL_FILE, path.join(dir, 'onnx', 'model.onnx'));
  tf.env.localModelPath = tmp;
  try {
    const tokenizer = await tf.AutoTokenizer.from_pretrained('gqa-decoder');
    const model = await tf.AutoModelForCausalLM.from_pretrained('gqa-decoder', {
      dtype: 'fp32', device: 'cpu', session_options: { intraOpNumThreads: 1, interOpNumThreads: 1 },
    });
    const t = tokenizer('Hello');
    check('(c) transformers.js tokenizer: "Hello" == our ids', eq(Array.from(t.input_ids.data, Number), HELLO), JSON.stringify(Array.from(t.input_ids.data, Number)));
    const tt = tokenizer(TEXT);
    check('(c) transformers.js tokenizer: text == its UTF-8 bytes', eq(Array.from(tt.input_ids.data, Number), bytes));
    const chat = tokenizer.apply_chat_template([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'héllo' }], { tokenize: false, add_generation_prompt: true });
    check('(c) chat template renders', chat === '<s><|system|>Be brief.\n<|user|>héllo\n<|assistant|>', JSON.stringify(chat));
    const out = await model.generate({ ...t, max_new_tokens: STEPS, do_sample: false });
    const gen = Array.from(out.data, Number).slice(HELLO.length);
    console.log('  generate:   ' + JSON.stringify(gen));
    check('(c) transformers.js greedy generate == ours, token for token', eq(gen, cached.toks));
    tokenizer.padding_side = 'left';
    const tb = tokenizer(['Hello', 'Hi, tensorgate ✓ 日本'], { padding: true });
    const outB = await model.generate({ ...tb, max_new_tokens: STEPS, do_sample: false });
    const [bRows, bLen] = outB.dims;
    const rows = [];
    for (let r = 0; r < bRows; r++) rows.push(Array.from(outB.data.slice(r * bLen, (r + 1) * bLen), Number).slice(bLen - STEPS));
    check('(c) transformers.js left-padded batch generate == ours alone', eq(rows[0], cached.toks) && eq(rows[1], alone2.toks),
      `pad ids ${JSON.stringify(Array.from(tb.input_ids.data, Number).slice(0, PROMPT2.length - HELLO.length))}`);
  } catch (e) {
    check('(c) transformers.js loads and generates', false, e.stack ?? String(e));
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

console.log(failures ? `${failures} check(s) FAILED` : 'all checks passed');
process.exitCode = failures ? 1 : 0;
