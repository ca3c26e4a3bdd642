/**
 * The web console at / in a real browser: Debian's Chromium driven by playwright-core against a real server
 * with the bundled models. The Models page lists them; a text prediction shows a label and bars; a generation
 * streams; the Watch page's charts fill while a gRPC load runs; the commands to copy run as shown; with an
 * access policy the page itself is open and its data calls carry the token entered (a refusal shows the
 * server's message); in explicit model control mode the page loads and unloads models; a version whose lone
 * runs get every core says so.
 *
 * Chromium must be installed (`apt-get install -y chromium`; CI's .ci/run does): without it these tests fail
 * saying so. UPDATE_SCREENSHOTS=1 writes docs/console-{models,try,watch}.png.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { once } from 'node:events';
import { addModel, BUNDLED_MODELS_DIR, copyBundledModel, f32Tensor, PACKAGE_ROOT, seededFloats, startTestServer, tempDir, unary, type TestServer } from './common';
import { newKey, sha256 } from './auth-fixtures';
import { writeSlowModel } from './fixtures/onnx-fixtures';

const run = promisify(execFile);
const CHROMIUM = process.env.TENSORGATE_CHROMIUM ?? '/usr/bin/chromium';
const SCREENSHOTS = process.env.UPDATE_SCREENSHOTS === '1';
/** Generous for a busy 2-core machine: every wait ends as soon as its condition holds. */
const WAIT_MS = 60_000;

let browser: Browser;

before(async () => {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`the console's browser tests need Chromium at ${CHROMIUM}, which is missing: install Debian's package with 'apt-get install -y chromium' (CI's .ci/run does), or set TENSORGATE_CHROMIUM to a Chromium binary`);
  }
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu'] });
});

after(async () => {
  await browser?.close();
});

interface OpenPage {
  page: Page;
  /** Console errors and uncaught exceptions (a Content-Security-Policy violation is one). */
  problems: string[];
  close(): Promise<void>;
}

async function open(url: string): Promise<OpenPage> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const problems: string[] = [];
  page.on('console', (m) => {
    // A refused call is logged by the browser as a failed resource; the page shows it, tested separately.
    if (m.type() === 'error' && !/status of 40[13]/.test(m.text())) problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(e.message));
  await page.goto(url);
  return { page, problems, close: () => context.close() };
}

async function screenshot(page: Page, name: string): Promise<void> {
  if (SCREENSHOTS) await page.screenshot({ path: path.join(PACKAGE_ROOT, 'docs', name), fullPage: true });
}

/** Runs a command copied from the page in bash (as a user pastes it), from the package root. */
async function paste(command: string): Promise<string> {
  const { stdout } = await run('bash', ['-c', command], { cwd: PACKAGE_ROOT, timeout: WAIT_MS });
  return stdout;
}

const snippet = (page: Page, label: string) => page.locator(`pre[data-snippet="${label}"]`).innerText();

/**
 * Polls `condition` until it holds, at most WAIT_MS (Playwright's waitForFunction evaluates strings, which the
 * page's Content-Security-Policy forbids, as it should).
 */
async function waitUntil(condition: () => Promise<boolean>, what: string | (() => Promise<string>), ms = WAIT_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`gave up after ${ms} ms waiting for ${typeof what === 'string' ? what : await what()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('the console on a server with the bundled models', () => {
  let ts: TestServer;
  let base: string;

  before(async () => {
    ts = await startTestServer({ modelRepository: BUNDLED_MODELS_DIR });
    base = `http://127.0.0.1:${ts.server.httpPort}`;
  });

  after(async () => {
    await ts?.close();
  });

  test('its files: the page, its modules and uPlot, revalidated, and nothing else', async () => {
    const page = await fetch(`${base}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type')!, /^text\/html/);
    assert.equal(page.headers.get('cache-control'), 'no-cache');
    assert.match(page.headers.get('content-security-policy')!, /default-src 'self'/);
    assert.match(await page.text(), /<script type="module" src="\/console\/main.js">/);
    const etag = page.headers.get('etag')!;
    // (fetch adds `cache-control: no-cache` to a conditional request unless one is given, which refuses a 304.)
    assert.equal((await fetch(`${base}/`, { headers: { 'if-none-match': etag, 'cache-control': 'max-age=0' } })).status, 304);
    for (const [file, type] of [
      ['/console/main.js', /javascript/],
      ['/console/style.css', /text\/css/],
      ['/console/uPlot.esm.js', /javascript/],
      ['/console/uPlot.min.css', /text\/css/],
    ] as const) {
      const res = await fetch(base + file);
      assert.equal(res.status, 200, file);
      assert.match(res.headers.get('content-type')!, type, file);
      await res.arrayBuffer();
    }
    for (const file of ['/console/uPlot.cjs.js', '/console/nothing.js', '/console/../package.json', '/console/%2e%2e/package.json']) {
      const res = await fetch(base + file);
      assert.ok(res.status === 404 || res.status === 403, `${file}: ${res.status}`);
      assert.ok(typeof ((await res.json()) as { error?: unknown }).error === 'string');
    }
    const summary = await fetch(`${base}/console/api/summary?after=soon`);
    assert.equal(summary.status, 400);
    assert.match(((await summary.json()) as { error: string }).error, /after must be a sample number/);
  });

  test('the Models page lists every bundled model with its versions, state and batching settings', async () => {
    const { page, problems, close } = await open(`${base}/`);
    try {
      for (const name of ['convnet', 'mlp', 'sentiment', 'tiny-lm']) {
        await page.locator(`section[data-model="${name}"]`).waitFor();
        assert.equal(await page.getByRole('heading', { name, exact: true }).count(), 1, name);
      }
      const mlp = page.locator('section[data-model="mlp"]');
      assert.match(await mlp.innerText(), /max batch size\s+256/);
      const row = mlp.getByRole('table', { name: 'Versions of mlp' }).locator('tr[data-version="1"]');
      assert.match(await row.innerText(), /READY[\s\S]*input FP32 \[-1, 64\][\s\S]*logits FP32 \[-1, 10\][\s\S]*closed/);
      assert.match(await page.locator('section[data-model="sentiment"]').innerText(), /labels\s+negative, positive/);
      assert.equal(await page.getByRole('button', { name: 'Unload mlp' }).count(), 0, 'no model control outside explicit mode');
      await screenshot(page, 'console-models.png');
      assert.deepEqual(problems, []);
    } finally {
      await close();
    }
  });

  test('Try it: a text prediction shows the label and a bar per label, and its commands run as shown', async () => {
    const { page, problems, close } = await open(`${base}/#try/sentiment`);
    try {
      const text = 'What a wonderful, happy day';
      await page.getByLabel('Text').fill(text);
      await page.getByRole('button', { name: 'Predict' }).click();
      await page.locator('[data-label="positive"]').waitFor();
      const positive = Number(await page.getByRole('meter', { name: 'positive' }).getAttribute('aria-valuenow'));
      const negative = Number(await page.getByRole('meter', { name: 'negative' }).getAttribute('aria-valuenow'));
      assert.ok(positive > 0.5 && Math.abs(positive + negative - 1) < 1e-5, `${positive} + ${negative}`);
      // The page's figure is the server's.
      const predict = await unary(ts.client, 'Predict', { model: 'sentiment', input_text: text });
      assert.ok(Math.abs(predict.confidence - positive) < 1e-6);

      const curl = JSON.parse(await paste(await snippet(page, 'curl')));
      assert.deepEqual(curl.outputs.find((o: { name: string }) => o.name === 'label').data, ['positive']);
      const buf = JSON.parse(await paste(await snippet(page, 'buf curl')));
      assert.equal(buf.outputText, 'positive');
      const script = path.join(tempDir('console-py').dir, 'predict.py');
      fs.writeFileSync(script, await snippet(page, 'Python'));
      try {
        assert.match((await run('/usr/bin/python3', [script], { timeout: WAIT_MS })).stdout, /^positive 0\.9\d* \{'negative': 0\.0\d*, 'positive': 0\.9\d*\}$/m);
      } finally {
        fs.rmSync(path.dirname(script), { recursive: true, force: true });
      }

      // Explanation (POST /v2/models/{m}/explain): each word highlighted with its contribution.
      await page.getByRole('button', { name: 'Explain', exact: true }).click();
      const marks = page.getByLabel('Word contributions to positive').locator('mark');
      await marks.first().waitFor();
      const contributions = new Map<string, number>();
      for (const mark of await marks.all()) contributions.set(await mark.innerText(), Number(await mark.getAttribute('data-contribution')));
      assert.ok(contributions.get('wonderful')! > 0 && contributions.get('happy')! > 0, JSON.stringify([...contributions]));
      // Feedback on this very prediction (its request id), then the live accuracy on the Watch page.
      await page.getByRole('button', { name: 'The right label was positive', exact: true }).click();
      await page.getByText(/^Recorded: the prediction was right\. Live accuracy 100(\.0)?% over the last 1 answers\.$/).waitFor();
      await screenshot(page, 'console-try.png');
      await page.goto(`${base}/#watch`);
      await page.getByRole('region', { name: 'Watch' }).getByLabel('Model', { exact: true }).selectOption('sentiment');
      await page.getByRole('heading', { name: 'Live accuracy of sentiment' }).waitFor();
      const confusion = page.getByRole('table', { name: 'Confusion counts of version 1' });
      assert.equal(await confusion.getByRole('row', { name: /^positive/ }).getByRole('cell').last().innerText(), '1');
      assert.deepEqual(problems, []);
    } finally {
      await close();
    }
  });

  test('Try it: a generation streams its text piece by piece, shows tokens/s, and ends as the API answers', { timeout: 180_000 }, async () => {
    const { page, problems, close } = await open(`${base}/#try/tiny-lm`);
    try {
      const prompt = 'And God said';
      await page.getByLabel('Prompt').fill(prompt);
      await page.getByLabel('Temperature').fill('0');
      await page.getByLabel('Max tokens').fill('40');
      // Every length the generated text has, as the page grows it.
      await page.evaluate(`(() => {
        const out = document.querySelector('pre.generated');
        window.lengths = [];
        new MutationObserver(() => window.lengths.push(out.querySelector('.completion')?.textContent.length ?? 0))
          .observe(out, { childList: true, subtree: true, characterData: true });
      })()`);
      await page.getByRole('button', { name: 'Generate' }).click();
      await page.getByLabel('Generation speed').getByText(/finished: length/).waitFor();
      const lengths = (await page.evaluate('window.lengths')) as number[];
      const distinct = [...new Set(lengths.filter((n) => n > 0))];
      assert.ok(distinct.length >= 3, `the text arrived in ${distinct.length} pieces: ${distinct.join(', ')}`);
      assert.deepEqual(distinct, [...distinct].sort((a, b) => a - b), 'it only grew');
      assert.ok(Number(await page.locator('.stats').getAttribute('data-tokens-per-s')) > 0);
      assert.match(await page.getByLabel('Generation speed').innerText(), /^40 tokens · [\d,.]+ tokens\/s · first token after [\d,]+ ms · finished: length$/);
      const shown = await page.locator('pre.generated .completion').innerText();
      const res = await fetch(`${base}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'tiny-lm', prompt, max_tokens: 40, temperature: 0 }) });
      assert.equal(shown, ((await res.json()) as { choices: { text: string }[] }).choices[0]!.text);
      const streamed = await paste(await snippet(page, 'curl'));
      assert.match(streamed, /^data: \{.*"text":/m);
      assert.match(streamed, /^data: \[DONE\]$/m);
      assert.deepEqual(problems, []);
    } finally {
      await close();
    }
  });

  test('Try it: a tensor model starts from a valid random request and shows its outputs; the commands run', async () => {
    const { page, problems, close } = await open(`${base}/#try/mlp`);
    try {
      const request = JSON.parse(await page.getByLabel('Request (v2 JSON)').inputValue());
      assert.deepEqual(request.inputs.map((i: { name: string; datatype: string; shape: number[] }) => [i.name, i.datatype, i.shape]), [['input', 'FP32', [1, 64]]]);
      assert.equal(request.inputs[0].data.length, 64);
      await page.getByRole('button', { name: 'Infer' }).click();
      const row = page.getByRole('table', { name: 'Output tensors' }).locator('tr[data-output="logits"]');
      assert.match(await row.innerText(), /FP32\s+\[1, 10\]/);
      const curl = JSON.parse(await paste(await snippet(page, 'curl')));
      assert.deepEqual(curl.outputs[0].shape, [1, 10]);
      const buf = JSON.parse(await paste(await snippet(page, 'buf curl')));
      assert.equal(Buffer.from(buf.outputs[0].data, 'base64').length, 40, '10 FP32 logits');
      // The same as an async job: submitted, polled until it ends, its result shown like the call's.
      await page.getByRole('button', { name: 'New random request' }).click();
      await page.getByLabel('Run as a job (async)').check();
      await page.getByRole('button', { name: 'Infer' }).click();
      await page.getByLabel('Job status').getByText(/^Job [0-9a-f-]{36}: succeeded$/).waitFor();
      assert.match(await row.innerText(), /FP32\s+\[1, 10\]/);
      assert.deepEqual(problems, []);
    } finally {
      await close();
    }
  });

  test('Watch: the charts fill with the figures of a gRPC load while it runs', { timeout: 180_000 }, async () => {
    const { page, problems, close } = await open(`${base}/#watch`);
    let loading = true;
    const workers: Promise<void>[] = [];
    try {
      await page.getByRole('region', { name: 'Watch' }).getByLabel('Model', { exact: true }).selectOption('mlp');
      const chart = async (id: string) => {
        const figure = page.locator(`[data-chart="${id}"]`);
        return { points: Number(await figure.getAttribute('data-points')), latest: (await figure.getAttribute('data-latest')) ?? '' };
      };
      await waitUntil(async () => (await chart('requests')).points >= 1, 'the first sample');
      const before = (await chart('requests')).points;
      // Two callers run the model; two send one input again and again, which the result cache answers.
      const x = f32Tensor('input', [1, 64], seededFloats(64, 7));
      for (let i = 0; i < 4; i++) {
        const options = { bypass_cache: i < 2 };
        workers.push(
          (async () => {
            while (loading) await unary(ts.client, 'Predict', { model: 'mlp', inputs: [x], options });
          })(),
        );
      }
      // Several more samples, the latest with requests, a latency and a batch size of mlp.
      await waitUntil(
        async () => {
          const [requests, latency, batch] = [await chart('requests'), await chart('latency'), await chart('batch')];
          return requests.points >= before + (SCREENSHOTS ? 12 : 3) && Number(requests.latest) > 0 && latency.latest !== '' && Number(batch.latest) >= 1;
        },
        async () => `samples of the load in the charts: ${JSON.stringify({ requests: await chart('requests'), latency: await chart('latency'), batch: await chart('batch') })}`,
        WAIT_MS * 2,
      );
      await screenshot(page, 'console-watch.png');
      assert.deepEqual(problems, []);
    } finally {
      loading = false;
      await Promise.all(workers);
      await close();
    }
  });
});

describe('the console with an access policy', () => {
  const keys = { alice: newKey(), narrow: newKey() };
  let ts: TestServer;
  let base: string;
  let dir: ReturnType<typeof tempDir>;

  before(async () => {
    dir = tempDir('console-auth');
    copyBundledModel(dir.dir, 'mlp');
    copyBundledModel(dir.dir, 'sentiment');
    const policy = path.join(dir.dir, 'policy.yaml');
    fs.writeFileSync(
      policy,
      [
        'api_keys:',
        `  - { name: alice, sha256: "${sha256(keys.alice)}" }`,
        `  - { name: narrow, sha256: "${sha256(keys.narrow)}" }`,
        'permissions:',
        "  - { principals: ['key:alice'], models: ['*'], actions: ['*'] }",
        "  - { principals: ['key:narrow'], models: [mlp], actions: [metadata] }",
        '',
      ].join('\n'),
    );
    ts = await startTestServer({ modelRepository: dir.dir, authConfig: policy });
    base = `http://127.0.0.1:${ts.server.httpPort}`;
  });

  after(async () => {
    await ts?.close();
    dir?.cleanup();
  });

  test('the page is open, its data calls need the token entered, and a refusal shows the server message', async () => {
    assert.equal((await fetch(`${base}/console/main.js`)).status, 200, 'the files are the open console group');
    const refused = await fetch(`${base}/console/api/models`);
    assert.equal(refused.status, 401);
    const { page, problems, close } = await open(`${base}/`);
    try {
      await page.getByRole('alert').getByText(/^401: this server requires credentials: send 'authorization: Bearer/).waitFor();
      await page.getByLabel('API token').fill(keys.narrow);
      await page.getByRole('button', { name: 'Use' }).click();
      await page.locator('section[data-model="mlp"]').waitFor();
      assert.equal(await page.locator('section[data-model="sentiment"]').count(), 0, 'narrow may read mlp only');
      await page.goto(`${base}/#try/mlp`);
      await page.getByRole('button', { name: 'Infer' }).click();
      await page.getByText(`403: key:narrow has no 'infer' permission on model "mlp"`).waitFor();
      const snippets = await snippet(page, 'curl');
      assert.ok(snippets.includes('$TENSORGATE_TOKEN') && !snippets.includes(keys.narrow), 'commands read the token from the environment');

      await page.getByLabel('API token').fill(keys.alice);
      await page.getByRole('button', { name: 'Use' }).click();
      await page.getByRole('button', { name: 'Infer' }).click();
      await page.locator('tr[data-output="logits"]').waitFor();
      assert.deepEqual(problems, []);
    } finally {
      await close();
    }
  });
});

describe('the console in explicit model control mode', () => {
  let ts: TestServer;
  let dir: ReturnType<typeof tempDir>;

  before(async () => {
    dir = tempDir('console-explicit');
    copyBundledModel(dir.dir, 'mlp');
    copyBundledModel(dir.dir, 'sentiment');
    ts = await startTestServer({ modelRepository: dir.dir, modelControlMode: 'explicit', loadModels: ['mlp'] });
  });

  after(async () => {
    await ts?.close();
    dir?.cleanup();
  });

  test('loads a model from the repository folder and unloads one', async () => {
    const { page, problems, close } = await open(`http://127.0.0.1:${ts.server.httpPort}/`);
    try {
      await page.getByRole('button', { name: 'Load sentiment', exact: true }).click();
      await page.locator('section[data-model="sentiment"] tr[data-version="1"]').getByText('READY').waitFor();
      assert.equal(ts.server.repository.get('sentiment')?.versions[0]?.state, 'READY');
      await page.getByRole('button', { name: 'Unload mlp' }).click();
      await page.getByRole('button', { name: 'Load mlp', exact: true }).waitFor();
      assert.equal(ts.server.repository.get('mlp')?.versions.some((v) => v.state === 'READY') ?? false, false);
      assert.deepEqual(problems, []);
    } finally {
      await close();
    }
  });
});

describe('the console on a server with a slow model', () => {
  let repo: ReturnType<typeof tempDir>;
  let ts: TestServer;

  before(async () => {
    repo = tempDir('console-solo');
    addModel(repo.dir, 'slow', '', { 1: writeSlowModel });
    ts = await startTestServer({ modelRepository: repo.dir, cacheMaxBytes: 0, inlineMaxRunUs: 0, workers: 2, intraOpThreads: 1, soloThreads: 2 });
  });

  after(async () => {
    await ts?.close();
    repo?.cleanup();
  });

  test('a version whose lone runs get every core says so in Runs on, with the measurement on hover', async () => {
    // One request at a time until the solo session is made (solo-runs.test.ts shows when and why).
    const ready = once(ts.server.scheduler, 'solo');
    let settled = false;
    void ready.then(() => (settled = true));
    const request = (seed: number) => ({ model: 'slow', inputs: [f32Tensor('x', [8, 256], seededFloats(8 * 256, seed))] });
    for (let i = 0; i < 64 && !settled; i++) await unary(ts.client, 'Predict', request(i));
    const [event] = await ready;
    assert.equal(event.state, 'ready');
    const { page, problems, close } = await open(`http://127.0.0.1:${ts.server.httpPort}/`);
    try {
      const row = page.getByRole('table', { name: 'Versions of slow' }).locator('tr[data-version="1"]');
      await row.locator('.solo').waitFor();
      assert.match(await row.innerText(), /workers \(typical run [\d,]+ µs\)\s*every core when alone \(\d+ solo runs\)/);
      assert.match((await row.locator('.solo').getAttribute('title')) ?? '', /uses a session with 2 threads/);
      assert.deepEqual(problems, []);
    } finally {
      await close();
    }
  });
});
