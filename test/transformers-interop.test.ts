/**
 * The model folders tensorgate serves are plain Hugging Face folders: transformers.js (@huggingface/transformers,
 * another runtime on the same ONNX Runtime) loads the same files and its greedy generation equals our
 * Generate stream token for token, and its tokenizer and chat template give the same prompt tokens. Run for
 * the bundled language model and for the structurally different gqa-decoder fixture (merged decoder, fp16
 * KV cache, grouped-query attention, no position_ids).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { BUNDLED_MODELS_DIR, startTestServer, tempDir, type TestServer } from './common';
import { addGenerationModel, FIXTURE, generate, tokensOf } from './generation-helpers';

// transformers.js is an ES module with a CommonJS build; the types are only used loosely here.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const tf = require('@huggingface/transformers') as {
  env: { allowRemoteModels: boolean; allowLocalModels: boolean; localModelPath: string };
  AutoTokenizer: { from_pretrained(name: string): Promise<any> };
  AutoModelForCausalLM: { from_pretrained(name: string, options: object): Promise<any> };
};

const MODELS = [
  { name: 'tiny-lm', dir: path.join(BUNDLED_MODELS_DIR, 'tiny-lm'), prompt: 'And God said' },
  { name: 'gqa', dir: FIXTURE, prompt: 'Hello' },
];
const STEPS = 30;

let ts: TestServer;
let repo: { dir: string; cleanup: () => void };
/** transformers.js wants <name>/onnx/model.onnx beside the JSON files: that layout, in a temp folder. */
let tfjsRoot: { dir: string; cleanup: () => void };

before(async () => {
  repo = tempDir('interop');
  fs.cpSync(MODELS[0]!.dir, path.join(repo.dir, 'tiny-lm'), { recursive: true });
  addGenerationModel(repo.dir, 'gqa');
  ts = await startTestServer({ modelRepository: repo.dir, workers: 1 });
  tfjsRoot = tempDir('interop-tfjs');
  for (const m of MODELS) {
    const dir = path.join(tfjsRoot.dir, m.name);
    fs.mkdirSync(path.join(dir, 'onnx'), { recursive: true });
    for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(m.dir, f), path.join(dir, f));
    fs.symlinkSync(path.join(m.dir, '1', 'model.onnx'), path.join(dir, 'onnx', 'model.onnx'));
  }
  tf.env.allowRemoteModels = false;
  tf.env.allowLocalModels = true;
  tf.env.localModelPath = tfjsRoot.dir;
});

after(async () => {
  await ts.close();
  repo.cleanup();
  tfjsRoot.cleanup();
});

for (const m of MODELS) {
  test(`${m.name}: transformers.js loads the folder; its greedy tokens and prompt tokens equal ours`, async () => {
    const tokenizer = await tf.AutoTokenizer.from_pretrained(m.name);
    const model = await tf.AutoModelForCausalLM.from_pretrained(m.name, { dtype: 'fp32', device: 'cpu', session_options: { intraOpNumThreads: 1 } });
    try {
      const inputs = tokenizer(m.prompt);
      const promptIds = Array.from(inputs.input_ids.data as BigInt64Array, Number);
      const output = await model.generate({ ...inputs, max_new_tokens: STEPS, min_new_tokens: STEPS, do_sample: false });
      const theirs = Array.from(output.data as BigInt64Array, Number).slice(promptIds.length);
      const ours = await generate(ts, { model: m.name, prompt: m.prompt, max_tokens: STEPS, temperature: 0, ignore_eos: true });
      assert.equal(ours.at(-1)!.usage!.prompt_tokens, promptIds.length, 'same prompt tokens');
      assert.deepEqual(tokensOf(ours), theirs);
      // the chat template renders the same prompt in both
      const messages = [{ role: 'user', content: 'Who made the heaven?' }];
      const rendered: string = tokenizer.apply_chat_template(messages, { tokenize: false, add_generation_prompt: true });
      const chat = await generate(ts, { model: m.name, messages, max_tokens: 1, temperature: 0 });
      assert.equal(chat.at(-1)!.usage!.prompt_tokens, tokenizer(rendered, { add_special_tokens: false }).input_ids.data.length);
    } finally {
      await model.dispose();
    }
  });
}
