/**
 * The client half of the CLI: `tensorgate models` and `tensorgate predict`, printing JSON.
 */
import * as fs from 'node:fs/promises';
import { dataTypeByName, type DataTypeName } from '../core/dtype';
import { bytesToValues, valuesToBytes, type TensorValue } from '../core/tensor-values';
import { createModelClient, unary } from '../client/model-client';
import type { ClientSecurity } from '../client/client-security';

interface JsonTensor {
  name: string;
  dtype: DataTypeName;
  shape: number[];
  values: (number | string | boolean)[];
}

function jsonToProtoTensor(t: JsonTensor) {
  if (!t || typeof t.name !== 'string' || !dataTypeByName(t.dtype) || !Array.isArray(t.shape) || !Array.isArray(t.values)) {
    throw new Error('--input must be {"name": string, "dtype": "FP32"|..., "shape": [..], "values": [..]} or an array of them');
  }
  if (t.dtype === 'STRING') return { name: t.name, dtype: t.dtype, shape: t.shape, data: Buffer.alloc(0), string_data: t.values.map(String) };
  const values = t.values.map((v): TensorValue => (typeof v === 'string' ? BigInt(v) : v));
  return { name: t.name, dtype: t.dtype, shape: t.shape, data: Buffer.from(valuesToBytes(t.dtype, values)), string_data: [] };
}

function protoTensorToJson(t: { name: string; dtype: DataTypeName; shape: number[]; data: Buffer; string_data: string[] }) {
  const values = t.dtype === 'STRING' ? t.string_data : bytesToValues(t.dtype, t.data).map((v) => (typeof v === 'bigint' ? v.toString() : v));
  return { name: t.name, dtype: t.dtype, shape: t.shape, values };
}

/**
 * `--input` as given: `-` reads stdin and `@FILE` reads a file, because a real batch (32 convnet images are
 * ~100k values, up to 2 MB of JSON) is past what Linux passes as one argument (128 KiB, E2BIG); anything else
 * is the JSON itself. `source` names where the text came from, for error messages.
 */
async function readInputArg(arg: string): Promise<{ text: string; source: string }> {
  if (arg === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return { text: Buffer.concat(chunks).toString('utf8'), source: '- (stdin)' };
  }
  if (arg.startsWith('@')) {
    const file = arg.slice(1);
    if (!file) throw new Error('--input @FILE needs a file name after @');
    try {
      return { text: await fs.readFile(file, 'utf8'), source: arg };
    } catch (err) {
      throw new Error(`--input ${arg}: cannot read ${file}: ${(err as Error).message}`);
    }
  }
  return { text: arg, source: '(the argument)' };
}

export async function modelsCommand(address: string, timeoutMs: number, security: ClientSecurity = {}): Promise<void> {
  const client = createModelClient(address, {}, { retries: true, security });
  try {
    const res = await unary(client, 'ListModels', {}, { deadlineMs: timeoutMs });
    for (const m of res.models) {
      const versions = m.versions.map((v: { version: string; state: string; reason: string }) => `v${v.version} ${v.state}${v.reason ? ` (${v.reason})` : ''}`);
      process.stdout.write(`${m.name.padEnd(16)} ${versions.join(', ') || `no versions${m.reason ? ` (${m.reason})` : ''}`}\n`);
    }
  } finally {
    client.close();
  }
}

export async function predictCommand(
  address: string,
  timeoutMs: number,
  args: { model?: string; version?: string; text?: string; input?: string; outputs: string[] },
  security: ClientSecurity = {},
): Promise<void> {
  if (!args.model) throw new Error('predict needs --model NAME');
  if (args.text === undefined && args.input === undefined) throw new Error('predict needs --text TEXT or --input JSON|@FILE|-');
  let inputs: ReturnType<typeof jsonToProtoTensor>[] = [];
  if (args.input !== undefined) {
    const { text, source } = await readInputArg(args.input);
    let parsed: JsonTensor | JsonTensor[];
    try {
      parsed = JSON.parse(text) as JsonTensor | JsonTensor[];
    } catch (err) {
      throw new Error(`--input ${source} is not JSON: ${(err as Error).message}`);
    }
    inputs = (Array.isArray(parsed) ? parsed : [parsed]).map(jsonToProtoTensor);
  }
  const client = createModelClient(address, {}, { retries: true, security });
  try {
    const res = await unary(
      client,
      'Predict',
      { model: args.model, version: args.version ?? '', input_text: args.text ?? '', inputs, outputs: args.outputs },
      { deadlineMs: timeoutMs },
    );
    // cached and request_id come first: they are what a user checks when answers look stale or when matching
    // a call to the server's access log, and a batch's outputs can run to megabytes after them.
    const out = {
      model: res.model,
      version: res.version,
      cached: res.cached,
      request_id: res.request_id,
      ...(res.output_text ? { output_text: res.output_text, confidence: res.confidence, labels: res.labels } : {}),
      outputs: res.outputs.map(protoTensorToJson),
    };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } finally {
    client.close();
  }
}
