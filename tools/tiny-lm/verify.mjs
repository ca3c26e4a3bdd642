// Verifies the exported model folder with onnxruntime-node (the repo's copy) and
// transformers.js, and samples text for word_check.py.
//
//   node verify.mjs [MODEL_DIR]     (default out/tiny-lm)
//   env: TOK_TOOLS (default /tmp/tok-tools: node_modules/@huggingface/tokenizers),
//        TFJS (default: the repository, whose dev dependencies hold @huggingface/transformers@4.3.1),
//        SAMPLES (default 30), SAMPLE_TOKENS (default 120)
// Exits 1 if any check fails. Writes ../samples.json (beside the model folder).
import ort from 'onnxruntime-node';
import fs from 'fs';
import path from 'path';
import { pathToFileURL } from 'url';

const HERE = path.dirname(new URL(import.meta.url).pathname);
const MODEL_DIR = path.resolve(process.argv[2] || path.join(HERE, 'out', 'tiny-lm'));
const TOK_TOOLS = process.env.TOK_TOOLS || '/tmp/tok-tools';
// transformers.js is a dev dependency of the repository; TFJS may point at another install.
const TFJS = process.env.TFJS || path.resolve(HERE, '..', '..');
const N_SAMPLES = Number(process.env.SAMPLES || 30);
const SAMPLE_TOKENS = Number(process.env.SAMPLE_TOKENS || 120);
const STEPS = 40;

const cfg = JSON.parse(fs.readFileSync(path.join(MODEL_DIR, 'config.json'), 'utf8'));
const tokJson = JSON.parse(fs.readFileSync(path.join(MODEL_DIR, 'tokenizer.json'), 'utf8'));
const tokCfg = JSON.parse(fs.readFileSync(path.join(MODEL_DIR, 'tokenizer_config.json'), 'utf8'));
const { Tokenizer } = await import(pathToFileURL(path.join(TOK_TOOLS, 'node_modules/@huggingface/tokenizers/dist/tokenizers.mjs')));
const tok = new Tokenizer(tokJson, tokCfg);
const L = cfg.num_hidden_layers, KV = cfg.num_key_value_heads, D = cfg.head_dim, V = cfg.vocab_size;
const PAD = cfg.pad_token_id, EOS = cfg.eos_token_id;

let failures = 0;
const check = (ok, what) => { console.log(`${ok ? 'PASS' : 'FAIL'}  ${what}`); if (!ok) failures++; };
const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

const session = await ort.InferenceSession.create(path.join(MODEL_DIR, 'onnx', 'model.onnx'));
console.log('inputs :', session.inputNames.join(' '));
console.log('outputs:', session.outputNames.join(' '));

const i64 = (rows) => new ort.Tensor('int64', BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0].length]);
const emptyPast = (b) => Array.from({ length: L }, () => [0, 1].map(() => new ort.Tensor('float32', new Float32Array(0), [b, KV, 0, D])));

// one forward step: ids/mask/pos are arrays of rows; returns last-position logits per row + presents
async function step(ids, mask, pos, past) {
  const feeds = { input_ids: i64(ids), attention_mask: i64(mask), position_ids: i64(pos) };
  past.forEach(([k, v], i) => { feeds[`past_key_values.${i}.key`] = k; feeds[`past_key_values.${i}.value`] = v; });
  const out = await session.run(feeds);
  const s = ids[0].length;
  const last = ids.map((_, r) => out.logits.data.subarray((r * s + s - 1) * V, (r * s + s) * V));
  const present = Array.from({ length: L }, (_, i) => [out[`present.${i}.key`], out[`present.${i}.value`]]);
  if (present[0][0].dims[2] !== mask[0].length) throw new Error('present length != attention_mask length');
  return { last, present, all: out.logits };
}
const argmax = (a) => { let m = 0; for (let i = 1; i < a.length; i++) if (a[i] > a[m]) m = i; return m; };
const maxdiff = (a, b) => { let m = 0; for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i])); return m; };

async function greedyCached(prompt, n) {
  let r = await step([prompt], [prompt.map(() => 1)], [prompt.map((_, i) => i)], emptyPast(1));
  const out = [], logits = [];
  let len = prompt.length;
  for (let t = 0; t < n; t++) {
    logits.push(Float32Array.from(r.last[0]));
    const next = argmax(r.last[0]);
    out.push(next);
    len++;
    r = await step([[next]], [Array(len).fill(1)], [[len - 1]], r.present);
  }
  return { out, logits };
}
async function greedyNoCache(prompt, n) {
  const seq = prompt.slice(), out = [], logits = [];
  for (let t = 0; t < n; t++) {
    const r = await step([seq], [seq.map(() => 1)], [seq.map((_, i) => i)], emptyPast(1));
    logits.push(Float32Array.from(r.last[0]));
    const next = argmax(r.last[0]);
    out.push(next); seq.push(next);
  }
  return { out, logits };
}
// left-padded batch; positions as transformers.js makes them (cumsum(mask)-1, padding -> 1)
async function greedyBatched(prompts, n) {
  const w = Math.max(...prompts.map((p) => p.length));
  const ids = prompts.map((p) => Array(w - p.length).fill(PAD).concat(p));
  const mask = prompts.map((p) => Array(w - p.length).fill(0).concat(p.map(() => 1)));
  const pos = prompts.map((p) => Array(w - p.length).fill(1).concat(p.map((_, i) => i)));
  let r = await step(ids, mask, pos, emptyPast(prompts.length));
  const outs = prompts.map(() => []);
  const next = prompts.map((p) => p.length);
  for (let t = 0; t < n; t++) {
    const toks = r.last.map(argmax);
    toks.forEach((x, i) => outs[i].push(x));
    mask.forEach((m) => m.push(1));
    r = await step(toks.map((x) => [x]), mask, next.map((x) => [x]), r.present);
    next.forEach((_, i) => next[i]++);
  }
  return outs;
}
const enc = (s) => tok.encode(s).ids;              // with <s>
const dec = (ids) => tok.decode(ids, { skip_special_tokens: true });

// 0. onnxruntime vs the PyTorch model export.py ran (padded batch, empty past)
const refPath = path.join(path.dirname(MODEL_DIR), 'reference.json');
if (fs.existsSync(refPath)) {
  const ref = JSON.parse(fs.readFileSync(refPath, 'utf8'));
  const r = await step(ref.input_ids, ref.attention_mask, ref.position_ids, emptyPast(ref.input_ids.length));
  const S = ref.input_ids[0].length;
  let dG = 0, d32 = 0;
  ref.attention_mask.forEach((m, b) => m.forEach((on, t) => {
    if (!on) return;
    const o = r.all.data.subarray((b * S + t) * V, (b * S + t + 1) * V);
    dG = Math.max(dG, maxdiff(o, ref.logits_graph_weights[b][t]));
    d32 = Math.max(d32, maxdiff(o, ref.logits_fp32_weights[b][t]));
  }));
  check(dG < 1e-3, `onnxruntime logits == PyTorch logits with the graph's weights (max |diff| ${dG.toExponential(2)})`);
  console.log(`      vs the unrounded float32 PyTorch weights: max |logit diff| ${d32.toExponential(2)}`);
}

// 1. KV cache == no cache; batched (left padding) == solo
const prompts = ['And God said', 'In the beginning', 'The LORD is my shepherd; I shall not', 'Jesus wept.', ''];  // '' = <s> alone
const solo = {};
for (const p of prompts) {
  const ids = enc(p);
  const a = await greedyCached(ids, STEPS);
  const b = await greedyNoCache(ids, STEPS);
  const d = Math.max(...a.logits.map((l, i) => maxdiff(l, b.logits[i])));
  check(same(a.out, b.out), `cache == no-cache, ${STEPS} greedy tokens from ${JSON.stringify(p)} (max |logit diff| ${d.toExponential(2)})`);
  solo[p] = a.out;
  console.log(`      ${JSON.stringify(dec(a.out))}`);
}
const batched = await greedyBatched(prompts.map(enc), STEPS);
prompts.forEach((p, i) => check(same(batched[i], solo[p]), `batched (left-padded to ${Math.max(...prompts.map((q) => enc(q).length))}) == solo for ${JSON.stringify(p)}`));

// 2. transformers.js loads the folder; its greedy generate == ours
const tf = await import(pathToFileURL(path.join(TFJS, 'node_modules/@huggingface/transformers/dist/transformers.node.mjs')));
tf.env.allowRemoteModels = false;
tf.env.allowLocalModels = true;
tf.env.localModelPath = path.dirname(MODEL_DIR) + '/';
const name = path.basename(MODEL_DIR);
const ttok = await tf.AutoTokenizer.from_pretrained(name);
const tmodel = await tf.AutoModelForCausalLM.from_pretrained(name, { dtype: 'fp32' });
const stopAtEos = (a) => (a.indexOf(EOS) >= 0 ? a.slice(0, a.indexOf(EOS) + 1) : a);
for (const p of prompts) {
  const inputs = ttok(p);
  const pid = Array.from(inputs.input_ids.data, Number);
  check(same(pid, enc(p)), `transformers.js tokenizer ids == @huggingface/tokenizers for ${JSON.stringify(p)}`);
  const out = await tmodel.generate({ ...inputs, do_sample: false, max_new_tokens: STEPS });
  const gen = out.tolist()[0].map(Number).slice(pid.length);
  const mine = stopAtEos(solo[p]);
  check(same(gen, mine), `transformers.js greedy generate == ours for ${JSON.stringify(p)} (${gen.length} tokens)`);
  if (!same(gen, mine)) console.log('      tfjs:', gen.join(' '), '\n      ours:', mine.join(' '));
  check(ttok.decode(gen, { skip_special_tokens: true }) === dec(mine), '      decoded text identical');
}
{
  const inputs = ttok(prompts, { padding: true });
  const out = await tmodel.generate({ ...inputs, do_sample: false, max_new_tokens: STEPS });
  const w = inputs.input_ids.dims[1];
  const rows = out.tolist().map((r) => r.map(Number).slice(w));
  prompts.forEach((p, i) => {
    const g = stopAtEos(rows[i]);
    check(same(g, stopAtEos(solo[p])), `transformers.js batched (padding_side ${ttok.padding_side}) generate == ours solo for ${JSON.stringify(p)}`);
  });
}
const chat = [{ role: 'system', content: 'A reader of the King James Bible.' }, { role: 'user', content: 'Who made the heaven and the earth?' }];
const rendered = ttok.apply_chat_template(chat, { tokenize: false, add_generation_prompt: true });
console.log('chat template renders:', JSON.stringify(rendered));

// 3. samples at temperature 0.8 (our own cached loop, seeded), for word_check.py
let seed = 12345;
const rand = () => { seed = (seed + 0x6d2b79f5) | 0; let t = Math.imul(seed ^ (seed >>> 15), 1 | seed); t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t; return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
function sample(logits, temp, topK) {
  let idx = Array.from(logits.keys());
  if (topK) idx = idx.sort((a, b) => logits[b] - logits[a]).slice(0, topK);
  const m = Math.max(...idx.map((i) => logits[i]));
  const w = idx.map((i) => Math.exp((logits[i] - m) / temp));
  let u = rand() * w.reduce((a, b) => a + b, 0);
  for (let j = 0; j < idx.length; j++) { u -= w[j]; if (u <= 0) return idx[j]; }
  return idx[idx.length - 1];
}
const samplePrompts = ['And God said', 'And it came to pass', 'Blessed are', 'Then said Jesus unto them'];
const samples = [];
for (const [temp, topK] of [[0.8, 0], [0.8, 40]]) {
  for (let s = 0; s < N_SAMPLES; s++) {
    const p = samplePrompts[s % samplePrompts.length];
    const ids = enc(p);
    let r = await step([ids], [ids.map(() => 1)], [ids.map((_, i) => i)], emptyPast(1));
    const out = [];
    for (let t = 0, len = ids.length; t < SAMPLE_TOKENS; t++) {
      const next = sample(r.last[0], temp, topK);
      if (next === EOS) break;
      out.push(next); len++;
      r = await step([[next]], [Array(len).fill(1)], [[len - 1]], r.present);
    }
    samples.push({ temperature: temp, top_k: topK, prompt: p, text: dec(out) });
  }
}
fs.writeFileSync(path.join(path.dirname(MODEL_DIR), 'samples.json'), JSON.stringify(samples, null, 1));
console.log(`wrote ${samples.length} samples to ${path.join(path.dirname(MODEL_DIR), 'samples.json')}`);
console.log(failures ? `${failures} check(s) FAILED` : 'all checks passed');
process.exit(failures ? 1 : 0);
