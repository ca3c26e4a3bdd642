/**
 * The README's "Calling it" section, run as written: every command of its ```sh blocks goes to bash, and its
 * ```python block to Debian's /usr/bin/python3, against a real server, in document order, so the README cannot
 * drift from what works again.
 *
 * How the commands are run:
 * - Port: the README talks to 127.0.0.1:50051. Rather than take 50051 (a developer's own `npm start` or another
 *   test may hold it), the server listens on an ephemeral port and every `127.0.0.1:50051` in the extracted text
 *   is rewritten to it (and `127.0.0.1:8080`, the HTTP port, to the server's HTTP port); commands that name no address (`npx tensorgate ...`) get it from TENSORGATE_ADDRESS,
 *   the variable the README documents for that.
 * - Working directory: a temp folder standing in for the root of a clone. It links the clone's top-level files
 *   and folders (proto/, node_modules/, package.json, dist/, ...), so `npx buf` resolves to the repo's
 *   node_modules/.bin, `npx tensorgate` to this package's own bin, and `-I proto` to our protos, while what the
 *   commands write (gen/, input files, predict.py) lands in the temp folder and is removed with it.
 * - `npx tensorgate` installs a link to the clone into npm's npx cache; the cache is pointed into the temp
 *   folder so nothing is left behind, and scripts are off so that link does not rebuild dist/ (already built).
 * - Skipped, by rule: `apt-get` lines (installing system packages needs root and the network; .ci/run installs
 *   the same packages, and the test checks the line names every package the Python example needs).
 *   Every other line runs exactly as pasted (with `set -o pipefail`, so a failing producer in a pipe fails).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PACKAGE_ROOT, startTestServer, tempDir, type TestServer } from './common';

const PROCESS_TIMEOUT_MS = 120_000;
const README = path.join(PACKAGE_ROOT, 'README.md');
const SECTION = '## Calling it';
const README_ADDRESS = '127.0.0.1:50051';
/** The HTTP port the README's curl commands use (the OpenAI-compatible API); rewritten to the test server's. */
const README_HTTP_ADDRESS = '127.0.0.1:8080';
const PYTHON = '/usr/bin/python3';
const DEBIAN_PACKAGES = ['python3-grpcio', 'python3-protobuf', 'protobuf-compiler'];
// What a clone's root holds that the commands may read; the rest of the repo is not needed.
const CLONE_ENTRIES = ['package.json', 'package-lock.json', '.npmrc', 'tsconfig.json', 'node_modules', 'dist', 'proto', 'models', 'src', 'test', 'tools'];

// ---------------------------------------------------------------------------------------------- parsing

interface Snippet {
  kind: 'sh' | 'python';
  text: string;
  line: number;
}

/** The text of a `## ` section, up to the next `## ` heading. */
function readmeSection(markdown: string, heading: string): { text: string; firstLine: number } {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => l.trim() === heading);
  assert.ok(start >= 0, `README.md has no "${heading}" section`);
  let end = lines.findIndex((l, i) => i > start && /^## /.test(l));
  if (end < 0) end = lines.length;
  return { text: lines.slice(start, end).join('\n'), firstLine: start + 1 };
}

/**
 * Commands of the section's ```sh blocks (one per logical line: a line ending in `\`, `|`, `&&` or `||`
 * continues, as in bash) and each ```python block whole, with their README line numbers.
 */
function snippets(section: string, firstLine: number): Snippet[] {
  const out: Snippet[] = [];
  const lines = section.split('\n');
  let fence: { kind: string; line: number; body: string[] } | undefined;
  lines.forEach((raw, i) => {
    const m = /^```(\w*)\s*$/.exec(raw.trim());
    if (!fence && m) return void (fence = { kind: m[1]!, line: firstLine + i, body: [] });
    if (fence && raw.trim() === '```') {
      if (fence.kind === 'python') out.push({ kind: 'python', text: fence.body.join('\n'), line: fence.line + 1 });
      if (fence.kind === 'sh') out.push(...shellCommands(fence.body, fence.line + 1));
      return void (fence = undefined);
    }
    fence?.body.push(raw);
  });
  assert.equal(fence, undefined, 'a code block in the section is never closed');
  return out;
}

function shellCommands(body: string[], firstLine: number): Snippet[] {
  const out: Snippet[] = [];
  let pending: { parts: string[]; line: number } | undefined;
  body.forEach((raw, i) => {
    if (!pending && (raw.trim() === '' || raw.trim().startsWith('#'))) return;
    if (pending) pending.parts.push(raw);
    else pending = { parts: [raw], line: firstLine + i };
    if (!/(\\|\||&&)\s*$/.test(raw)) {
      out.push({ kind: 'sh', text: pending.parts.join('\n'), line: pending.line });
      pending = undefined;
    }
  });
  assert.equal(pending, undefined, `a command in the sh block at README line ${firstLine - 1} ends in a continuation`);
  return out;
}

const markdown = fs.readFileSync(README, 'utf8');
const section = readmeSection(markdown, SECTION);
/** Sections whose commands run too, after "Calling it" (which the checks on addresses and apt-get are about). */
const MORE_SECTIONS = ['## Using existing v2 clients', '## Coming from Triton', '## Optimising a model', '## Web console', '## Explanations and live accuracy', '## Async jobs'];
const SNIPPETS = [section, ...MORE_SECTIONS.map((h) => readmeSection(markdown, h))].flatMap((s) => snippets(s.text, s.firstLine));
const isSkipped = (s: Snippet) => s.kind === 'sh' && /^\s*(sudo\s+)?apt-get\s/.test(s.text);

// ---------------------------------------------------------------------------------------------- expectations

function json(out: string, what: string): any {
  try {
    return JSON.parse(out);
  } catch {
    throw new Error(`${what} did not print JSON:\n${out}`);
  }
}

/** What each kind of command must print, beyond exiting 0. Every one must be met by some README command. */
const EXPECTATIONS: { name: string; when: (s: Snippet) => boolean; check: (stdout: string, cwd: string) => void }[] = [
  {
    name: 'buf curl --list-methods',
    when: (s) => /buf curl[\s\S]*--list-methods/.test(s.text),
    check: (out) => {
      for (const m of ['tensorgate.v1.ModelService/Predict', 'tensorgate.v1.ModelService/ListModels', 'grpc.health.v1.Health/Check']) {
        assert.match(out, new RegExp(`^${m}$`, 'm'));
      }
    },
  },
  {
    name: 'buf curl Predict with input_text',
    when: (s) => /buf curl[\s\S]*ModelService\/Predict/.test(s.text) && s.text.includes('"input_text"'),
    check: (out) => assert.equal(json(out, 'buf curl').outputText, 'positive'),
  },
  {
    name: 'buf curl Predict with base64 tensors',
    when: (s) => /ModelService\/Predict/.test(s.text) && /"data": *"/.test(s.text),
    check: (out) => {
      const res = json(out, 'buf curl');
      assert.ok(res.outputs?.length >= 1, `no outputs: ${out}`);
      for (const t of res.outputs) {
        const elements = t.shape.map(Number).reduce((a: number, b: number) => a * b, 1);
        assert.equal(Buffer.from(t.data, 'base64').length, elements * 4, `${t.name}: FP32 bytes for shape [${t.shape}]`);
      }
    },
  },
  {
    name: 'buf curl ListModels',
    when: (s) => /ModelService\/ListModels/.test(s.text),
    check: (out) => {
      const names = json(out, 'buf curl').models.map((m: { name: string }) => m.name);
      for (const n of ['convnet', 'mlp', 'sentiment']) assert.ok(names.includes(n), `ListModels lacks ${n}: ${names}`);
    },
  },
  {
    name: 'buf curl Health/Check',
    when: (s) => /Health\/Check/.test(s.text),
    check: (out) => assert.equal(json(out, 'buf curl').status, 'SERVING'),
  },
  {
    name: 'tensorgate models',
    when: (s) => /tensorgate models(?!\s+convert)/.test(s.text),
    check: (out) => {
      for (const n of ['convnet', 'mlp', 'sentiment', 'tiny-lm']) assert.match(out, new RegExp(`^${n}\\s+v1 READY$`, 'm'));
    },
  },
  {
    name: 'tensorgate predict --text',
    when: (s) => /tensorgate predict[\s\S]*--text/.test(s.text),
    check: (out) => {
      const res = json(out, 'tensorgate predict');
      assert.equal(res.output_text, 'positive');
      assert.equal(typeof res.cached, 'boolean');
      assert.ok(res.request_id, 'request_id printed');
    },
  },
  {
    name: 'tensorgate predict --input (inline, @FILE and -)',
    when: (s) => /tensorgate predict[\s\S]*--input/.test(s.text),
    check: (out) => {
      const res = json(out, 'tensorgate predict');
      assert.ok(res.outputs?.length >= 1, `no outputs: ${out}`);
      for (const t of res.outputs) {
        assert.equal(t.values.length, t.shape.reduce((a: number, b: number) => a * b, 1), `${t.name}: one value per element`);
      }
    },
  },
  {
    name: 'tensorgate generate',
    when: (s) => /tensorgate generate/.test(s.text),
    check: (out) => assert.match(out, /[A-Za-z]{2,}.*[A-Za-z]{2,}/, `generated text: ${out}`),
  },
  {
    name: 'buf curl Generate',
    when: (s) => /ModelService\/Generate/.test(s.text),
    check: (out) => {
      // buf curl prints each stream message as its own JSON document
      const messages = out.trim().split(/\n(?=\{)/).map((m) => json(m, 'buf curl Generate'));
      assert.ok(messages.length >= 2, `${messages.length} messages`);
      assert.equal(messages.at(-1).finishReason, 'LENGTH'); // ignore_eos: exactly max_tokens
      assert.ok(messages.at(-1).usage.completionTokens > 0);
    },
  },
  {
    name: 'curl /v1/completions',
    when: (s) => /curl[\s\S]*\/v1\/completions/.test(s.text) && !s.text.includes('async=true'),
    check: (out) => {
      const res = json(out, 'curl /v1/completions');
      assert.equal(res.object, 'text_completion');
      assert.ok(res.choices[0].text.length > 0);
      assert.ok(res.usage.completion_tokens > 0);
    },
  },
  {
    name: 'curl /v1/chat/completions streamed',
    when: (s) => /curl[\s\S]*\/v1\/chat\/completions/.test(s.text) && s.text.includes('"stream": true'),
    check: (out) => {
      assert.match(out, /^data: \{.*"chat\.completion\.chunk"/m);
      assert.ok(out.trimEnd().endsWith('data: [DONE]'), out.slice(-80));
    },
  },
  {
    name: 'protoc --python_out',
    when: (s) => /^protoc\s[\s\S]*tensorgate\/v1/.test(s.text),
    check: (_out, cwd) => assert.ok(fs.existsSync(path.join(cwd, 'gen/tensorgate/v1/model_service_pb2.py')), 'protoc wrote gen/tensorgate/v1/model_service_pb2.py'),
  },
  {
    name: 'curl v2 infer with input_text',
    when: (s) => /\/v2\/models\/sentiment\/infer/.test(s.text) && s.text.includes('"input_text"'),
    check: (out) => {
      const outputs = json(out, 'curl v2 infer').outputs;
      assert.deepEqual(outputs[0], { name: 'label', datatype: 'BYTES', shape: [1], data: ['positive'] });
      assert.deepEqual(outputs[2].data, ['negative', 'positive']);
    },
  },
  {
    name: 'curl the console summary',
    when: (s) => s.text.includes('/console/api/summary'),
    check: (out) => assert.ok(Array.isArray(json(out, 'the console summary').samples), out.slice(0, 200)),
  },
  {
    name: 'explain over REST and gRPC',
    when: (s) => /\/explain|ModelService\/Explain/.test(s.text),
    check: (out) => {
      const answer = json(out, 'explain');
      const words = answer.words as { word: string; contribution: number }[];
      assert.ok(words.find((w) => w.word === 'great')!.contribution > 0, out);
      assert.ok(words.find((w) => w.word === 'rude')!.contribution < 0, out);
    },
  },
  {
    name: 'feedback and accuracy',
    when: (s) => /\/feedback|\/accuracy/.test(s.text),
    check: (out) => {
      const answer = json(out, 'feedback or accuracy');
      if ('correct' in answer) assert.equal(answer.correct, true, out);
      else assert.equal(answer.versions[0].total_correct, 1, out);
    },
  },
  {
    name: 'an async job submitted and polled',
    when: (s) => s.text.includes('async=true') || s.text.includes('job.json'),
    check: (out) => {
      const job = json(out, 'the job');
      assert.equal(job.model, 'tiny-lm');
      assert.match(job.job_id, /^[0-9a-f-]{36}$/);
      if ('location' in job) assert.equal(job.location, `/v2/jobs/${job.job_id}`);
      assert.ok(['queued', 'running', 'succeeded'].includes(job.status), out);
    },
  },
  {
    name: 'tensorgate optimize',
    when: (s) => /tensorgate optimize/.test(s.text),
    check: (out, cwd) => {
      assert.match(out, /^sentiment: version 1 -> version 2 \(prune magnitude:0\.3\)$/m);
      assert.match(out, /^ {2}pruned 1 layers: \d+ of \d+ weights are zero \(3\d\.\d%\)$/m);
      assert.match(out, /output probabilities: largest difference over 4 rows of seeded inputs/);
      assert.ok(fs.existsSync(path.join(cwd, 'my-models', 'sentiment', '2', 'model.onnx')), 'my-models/sentiment/2/model.onnx written');
      assert.ok(!fs.existsSync(path.join(PACKAGE_ROOT, 'models', 'sentiment', '2')), 'the bundled models are untouched');
    },
  },
  {
    name: 'tensorgate compare',
    when: (s) => /tensorgate compare/.test(s.text),
    check: (out) => {
      const model = /^(mlp|sentiment): version 1 \(A\) vs version 2 \(B\)$/m.exec(out)?.[1];
      assert.ok(model, `compare printed its heading:\n${out}`);
      assert.match(out, /^model\.onnx\s+\d+\.\d KiB\s+\d+\.\d KiB\s+\d\.\d\dx$/m);
      assert.match(out, /^throughput, best batch\s+[\d,]+ rows\/s\s+[\d,]+ rows\/s/m);
      if (model === 'sentiment') assert.match(out, /^task accuracy: A \d+\.\d\d%, B \d+\.\d\d%/m);
      else assert.match(out, /^logits\s+\S+\s+\S+\s+\d+\.\d\d% of 256 rows$/m);
    },
  },
  {
    name: 'tensorgate models convert',
    when: (s) => /tensorgate models convert/.test(s.text),
    check: (out) => {
      assert.match(out, /^max_batch_size: 256$/m);
      assert.match(out, /^#\s+- instance_group\[0\] \(KIND_GPU\) runs as 1 CPU instance/m);
      assert.match(out, /^\s+shape: \[ -1, 64 \]$/m);
    },
  },
  {
    name: 'curl /v2 model metadata',
    when: (s) => /curl[\s\S]*\/v2\/models\/mlp$/.test(s.text),
    check: (out) => {
      const res = json(out, 'curl /v2/models/mlp');
      assert.deepEqual([res.name, res.platform, res.inputs[0].name, res.inputs[0].shape], ['mlp', 'onnxruntime_onnx', 'input', [-1, 64]]);
    },
  },
  {
    name: 'curl /v2 infer with JSON',
    when: (s) => /curl[\s\S]*\/v2\/models\/mlp\/infer/.test(s.text),
    check: (out) => {
      const res = json(out, 'curl /v2/models/mlp/infer');
      assert.deepEqual([res.model_name, res.outputs[0].name, res.outputs[0].shape], ['mlp', 'logits', [1, 10]]);
      assert.equal(res.outputs[0].data.length, 10);
    },
  },
  {
    name: 'protoc --python_out for the v2 protos',
    when: (s) => /^protoc\s[\s\S]*proto\/inference/.test(s.text),
    check: (_out, cwd) => assert.ok(fs.existsSync(path.join(cwd, 'gen/inference/grpc_service_pb2.py')), 'protoc wrote gen/inference/grpc_service_pb2.py'),
  },
  {
    name: 'Python v2 client',
    when: (s) => s.kind === 'python' && s.text.includes('GRPCInferenceService'),
    check: (out) => assert.match(out, /^42 1 \[1, 10\] \((-?[\d.e+-]+, ){9}-?[\d.e+-]+\)$/m, 'id, version, shape [1, 10] and ten floats'),
  },
  {
    name: 'Python client',
    when: (s) => s.kind === 'python' && s.text.includes('ModelService'),
    check: (out) => {
      assert.match(out, /^positive$/m);
      assert.match(out, /^\[1, 10\] \((-?[\d.e+-]+, ){9}-?[\d.e+-]+\)$/m, 'mlp logits: shape [1, 10] and ten floats');
    },
  },
];

// ---------------------------------------------------------------------------------------------- running

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd, env, timeout: PROCESS_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (!err) return resolve({ code: 0, stdout, stderr });
      const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean; signal?: string };
      if (typeof e.code === 'string') return reject(new Error(`cannot run ${file}: ${e.message}`));
      if (e.killed || e.signal) return reject(new Error(`${file} killed (${e.signal}) after ${PROCESS_TIMEOUT_MS} ms\nstderr: ${stderr}`));
      resolve({ code: typeof e.code === 'number' ? e.code : 1, stdout, stderr });
    });
  });
}

/** Fails with the Debian packages to install when the Python toolchain is missing (as cross-language does). */
async function requirePythonToolchain(cwd: string, env: NodeJS.ProcessEnv): Promise<void> {
  const missing: string[] = [];
  const pythonOk = fs.existsSync(PYTHON);
  if (!pythonOk) missing.push('python3');
  const protoc = await run('protoc', ['--version'], cwd, env).catch(() => undefined);
  if (!protoc || protoc.code !== 0) missing.push('protobuf-compiler (protoc)');
  if (pythonOk) {
    for (const [module, pkg] of [['grpc', 'python3-grpcio'], ['google.protobuf', 'python3-protobuf']]) {
      const r = await run(PYTHON, ['-c', `import ${module}`], cwd, env);
      if (r.code !== 0) missing.push(`${pkg} (${PYTHON} cannot import ${module})`);
    }
  }
  if (missing.length > 0) {
    assert.fail(
      `the README's Python example needs Debian packages that are not installed: ${missing.join(', ')}.\n` +
        `Install them with: apt-get install -y --no-install-recommends ${DEBIAN_PACKAGES.join(' ')}  (.ci/run does this)`,
    );
  }
}

let ts: TestServer;
let tmp: { dir: string; cleanup: () => void };
let clone: string;
let env: NodeJS.ProcessEnv;
const met = new Set<string>();

before(async () => {
  tmp = tempDir('readme');
  clone = path.join(tmp.dir, 'clone');
  fs.mkdirSync(clone);
  for (const entry of CLONE_ENTRIES) {
    if (fs.existsSync(path.join(PACKAGE_ROOT, entry))) fs.symlinkSync(path.join(PACKAGE_ROOT, entry), path.join(clone, entry));
  }
  ts = await startTestServer();
  env = {
    ...process.env,
    TENSORGATE_ADDRESS: ts.address,
    BUF_CACHE_DIR: path.join(tmp.dir, 'buf-cache'),
    npm_config_cache: path.join(tmp.dir, 'npm-cache'),
    npm_config_ignore_scripts: 'true',
    npm_config_update_notifier: 'false',
    // Debian's python with Debian's packages only: no virtualenv or user-site modules leaking in.
    PYTHONNOUSERSITE: '1',
    PYTHONDONTWRITEBYTECODE: '1',
  };
  for (const v of ['PYTHONPATH', 'PYTHONHOME', 'VIRTUAL_ENV']) delete env[v];
});

after(async () => {
  await ts?.close();
  tmp?.cleanup();
});

test('the Calling it section has commands for bash and a Python example', () => {
  assert.ok(SNIPPETS.filter((s) => s.kind === 'sh' && !isSkipped(s)).length >= 10, `found only: ${SNIPPETS.map((s) => s.text).join('\n')}`);
  assert.ok(SNIPPETS.some((s) => s.kind === 'python'), 'no ```python block');
  assert.ok(section.text.includes(README_ADDRESS), `the section no longer mentions ${README_ADDRESS}: update README_ADDRESS`);
  const apt = SNIPPETS.filter(isSkipped);
  assert.equal(apt.length, 1, 'one apt-get line');
  for (const p of DEBIAN_PACKAGES) assert.ok(apt[0]!.text.split(/\s+/).includes(p), `the apt-get line lacks ${p}: ${apt[0]!.text}`);
});

for (const snippet of SNIPPETS.filter((s) => !isSkipped(s))) {
  const title = snippet.kind === 'python' ? 'the Python example' : snippet.text.replace(/\s*\\?\n\s*/g, ' ').replace(/\s+#.*$/, '').slice(0, 90);
  test(`README line ${snippet.line}: ${title}`, async () => {
    const text = snippet.text.replaceAll(README_ADDRESS, ts.address).replaceAll(README_HTTP_ADDRESS, `127.0.0.1:${ts.server.httpPort}`);
    let r: RunResult;
    if (snippet.kind === 'python') {
      await requirePythonToolchain(clone, env);
      fs.writeFileSync(path.join(clone, 'predict.py'), text);
      r = await run(PYTHON, ['predict.py'], clone, env);
    } else {
      if (/^protoc\s/.test(text)) await requirePythonToolchain(clone, env);
      r = await run('bash', ['-o', 'pipefail', '-c', text], clone, env);
    }
    assert.equal(r.code, 0, `README line ${snippet.line} exited ${r.code}:\n${text}\nstdout: ${r.stdout.slice(0, 4000)}\nstderr: ${r.stderr.slice(0, 4000)}`);
    for (const e of EXPECTATIONS.filter((e) => e.when(snippet))) {
      e.check(r.stdout, clone);
      met.add(e.name);
    }
  });
}

test('every kind of call the README promises was run and checked', () => {
  const unmet = EXPECTATIONS.map((e) => e.name).filter((n) => !met.has(n));
  assert.deepEqual(unmet, [], `no README command exercised: ${unmet.join(', ')} (update README.md or EXPECTATIONS)`);
});
