/**
 * The same call as a command to copy: curl (REST), buf curl (gRPC through server reflection) and Python
 * (requests), for this server's real host and ports. A token is never written into a command: with an access
 * policy they read it from $TENSORGATE_TOKEN.
 */
import { h } from './dom.js';
import type { ServerInfo } from './models.js';
import { predictTensor, type V2Body } from './tensor-request.js';

export interface Snippet {
  label: string;
  code: string;
  note?: string;
}

interface Endpoint {
  http: string;
  grpc: string;
  bufFlags: string;
  auth: boolean;
}

function endpoint(server: ServerInfo): Endpoint {
  const scheme = server.tls ? 'https' : 'http';
  // location.hostname keeps an IPv6 address's brackets.
  const host = location.hostname;
  return {
    http: `${scheme}://${host}:${server.http_port}`,
    grpc: `${scheme}://${host}:${server.grpc_port}`,
    // gRPC over plaintext HTTP/2 needs prior knowledge; over TLS it is negotiated.
    bufFlags: server.tls ? '--protocol grpc' : '--protocol grpc --http2-prior-knowledge',
    auth: server.auth,
  };
}

/** A word in single quotes for sh: ' becomes '\''. */
const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
/** A JSON string literal is a Python string literal with the same value (same escapes). */
const py = (s: string) => JSON.stringify(s);

const curlAuth = (e: Endpoint) => (e.auth ? ` \\\n  -H "authorization: Bearer $TENSORGATE_TOKEN"` : '');
const pyHeaders = (e: Endpoint) => (e.auth ? `, headers={"authorization": "Bearer " + os.environ["TENSORGATE_TOKEN"]}` : '');
const pyImports = (e: Endpoint, ...modules: string[]) => `import ${[...modules, ...(e.auth ? ['os'] : [])].sort().join(', ')}`;

function bufCurl(e: Endpoint, method: string, body: unknown): string {
  return `npx buf curl ${e.bufFlags}${curlAuth(e)} \\\n  ${e.grpc}/${method} \\\n  -d ${sq(JSON.stringify(body))}`;
}

function curlJson(e: Endpoint, path: string, body: unknown, flags = '-s'): string {
  return `curl ${flags} ${e.http}${path} -H 'content-type: application/json'${curlAuth(e)} \\\n  -d ${sq(JSON.stringify(body))}`;
}

const infer = (model: string) => `/v2/models/${encodeURIComponent(model)}/infer`;

export function textSnippets(server: ServerInfo, model: string, text: string): Snippet[] {
  const e = endpoint(server);
  const body = { inputs: [{ name: 'input_text', datatype: 'BYTES', shape: [1], data: [text] }] };
  return [
    { label: 'curl', code: curlJson(e, infer(model), body) },
    { label: 'buf curl', code: bufCurl(e, 'tensorgate.v1.ModelService/Predict', { model, input_text: text }) },
    {
      label: 'Python',
      code: [
        pyImports(e, 'requests'),
        '',
        `body = {"inputs": [{"name": "input_text", "datatype": "BYTES", "shape": [1], "data": [${py(text)}]}]}`,
        `r = requests.post(${py(e.http + infer(model))}, json=body${pyHeaders(e)})`,
        'r.raise_for_status()',
        'out = {o["name"]: o["data"] for o in r.json()["outputs"]}',
        'print(out["label"][0], out["confidence"][0], dict(zip(out["labels"], out["probabilities"])))',
      ].join('\n'),
    },
  ];
}

export interface GenerateParams {
  prompt: string;
  max_tokens: number;
  temperature: number;
  top_p: number;
  seed?: number;
}

export function generateSnippets(server: ServerInfo, model: string, p: GenerateParams): Snippet[] {
  const e = endpoint(server);
  const params = { max_tokens: p.max_tokens, temperature: p.temperature, top_p: p.top_p, ...(p.seed !== undefined ? { seed: p.seed } : {}) };
  const pyParams = Object.entries(params).map(([k, v]) => `"${k}": ${v}`);
  return [
    { label: 'curl', code: curlJson(e, '/v1/completions', { model, prompt: p.prompt, ...params, stream: true }, '-sN') },
    { label: 'buf curl', code: bufCurl(e, 'tensorgate.v1.ModelService/Generate', { model, prompt: p.prompt, ...params }) },
    {
      label: 'Python',
      code: [
        pyImports(e, 'json', 'requests'),
        '',
        `body = {"model": ${py(model)}, "prompt": ${py(p.prompt)}, ${pyParams.join(', ')}, "stream": True}`,
        `with requests.post(${py(`${e.http}/v1/completions`)}, json=body, stream=True${pyHeaders(e)}) as r:`,
        '    r.raise_for_status()',
        '    for line in r.iter_lines(decode_unicode=True):',
        '        if line.startswith("data: ") and line != "data: [DONE]":',
        '            print(json.loads(line[6:])["choices"][0]["text"], end="", flush=True)',
        'print()',
      ].join('\n'),
    },
  ];
}

export function tensorSnippets(server: ServerInfo, model: string, body: V2Body): Snippet[] {
  const e = endpoint(server);
  const tensors = body.inputs.map(predictTensor);
  const buf: Snippet = tensors.every((t) => t !== undefined)
    ? { label: 'buf curl', code: bufCurl(e, 'tensorgate.v1.ModelService/Predict', { model, inputs: tensors }), note: 'Predict takes tensor data as base64 of the little-endian element bytes.' }
    : { label: 'buf curl', code: '# an input of this model is FP16 or BF16: use curl or Python (v2 JSON)', note: '' };
  return [
    { label: 'curl', code: curlJson(e, infer(model), body) },
    buf,
    {
      label: 'Python',
      code: [
        pyImports(e, 'json', 'requests'),
        '',
        `body = json.loads(${py(JSON.stringify(body))})`,
        `r = requests.post(${py(e.http + infer(model))}, json=body${pyHeaders(e)})`,
        'r.raise_for_status()',
        'for out in r.json()["outputs"]:',
        '    print(out["name"], out["datatype"], out["shape"], out["data"][:10])',
      ].join('\n'),
    },
  ];
}

/** Copies text; navigator.clipboard needs a secure context (localhost or HTTPS), else the selection is copied. */
async function copy(text: string, pre: HTMLElement): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const range = document.createRange();
    range.selectNodeContents(pre);
    const selection = getSelection();
    selection?.removeAllRanges();
    selection?.addRange(range);
    return document.execCommand('copy');
  }
}

/** The commands as labelled, copyable blocks; `auth` adds how to set the token. */
export function snippetBlocks(snippets: Snippet[], server: ServerInfo): HTMLElement {
  return h(
    'section',
    { class: 'snippets', 'aria-label': 'The same call from the command line or Python' },
    h('h3', {}, 'Call it yourself'),
    server.auth ? h('p', { class: 'hint' }, 'These commands send the token from $TENSORGATE_TOKEN: export TENSORGATE_TOKEN=… first.') : null,
    server.tls ? h('p', { class: 'hint' }, 'HTTPS: with a private CA add curl --cacert FILE, buf curl --cacert FILE, requests verify="FILE".') : null,
    ...snippets.map((s) => {
      const code = h('code', {}, s.code);
      const pre = h('pre', { 'data-snippet': s.label }, code);
      const button = h('button', { type: 'button', class: 'copy', 'aria-label': `Copy the ${s.label} command` }, 'Copy');
      button.addEventListener('click', () => {
        void copy(s.code, pre).then((ok) => {
          button.textContent = ok ? 'Copied' : 'Select and copy';
          setTimeout(() => (button.textContent = 'Copy'), 1500);
        });
      });
      return h('figure', { class: 'snippet' }, h('figcaption', {}, s.label, button), pre, s.note ? h('small', {}, s.note) : null);
    }),
  );
}
