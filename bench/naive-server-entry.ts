/**
 * Child-process entry: the naive baseline. The server a user would write in an afternoon instead of
 * deploying tensorgate: a bare grpc-js server with our ModelService definition whose Predict decodes the
 * tensors, calls `session.run` on the main thread (ONNX Runtime's default session options, default
 * threads) and answers. No batching, queue, cache, worker threads, validation or telemetry. If tensorgate
 * does not beat this at some model and concurrency, its machinery costs more than it buys there.
 *
 * Same proto, options and message limits as the no-op server, same request bytes from the load
 * generator, and the same PredictResponse fields as tensorgate (the text model gets its labels through
 * the repository's own text pipeline, so tokenising costs the same).
 *
 * argv[2]: a model repository (as bench/workload.ts writeRepository makes); every model in it is served
 * at its newest version selected by the config's version policy.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { toGrpcError } from '../src/api/grpc/status';
import { tensorFromProto, tensorToProto, type ProtoTensor } from '../src/api/grpc/tensor-codec';
import { dataTypeByName, dataTypeByOrt } from '../src/core/dtype';
import { invalidArgument, notFound } from '../src/core/errors';
import type { InferTensor } from '../src/core/tensor';
import { TextClassificationPipeline } from '../src/pipelines/text-classification';
import { CONFIG_FILE, readModelConfig } from '../src/repository/model-config';
import { MODEL_FILE } from '../src/repository/model-repository';
import { selectVersions } from '../src/repository/version-policy';
import { runEntry, serveBare } from './bare-server';
import type { EntryCounters } from './entry-ipc';

interface NaiveModel {
  version: string;
  session: ort.InferenceSession;
  text: TextClassificationPipeline | undefined;
}

interface PredictRequestMessage {
  model: string;
  inputs: ProtoTensor[];
  input_text: string;
  options: { request_id: string } | null;
}

async function loadModels(root: string): Promise<Map<string, NaiveModel>> {
  const models = new Map<string, NaiveModel>();
  for (const name of fs.readdirSync(root)) {
    const dir = path.join(root, name);
    const config = await readModelConfig(path.join(dir, CONFIG_FILE), name);
    const onDisk = fs.readdirSync(dir).filter((d) => /^[1-9][0-9]*$/.test(d)).map(Number);
    const newest = selectVersions(onDisk, config.version_policy)[0];
    if (newest === undefined) throw new Error(`naive server: no version folder in ${dir}`);
    models.set(name, {
      version: String(newest),
      // Default options on purpose: what a first attempt gets (one intra-op thread on the 2-core VMs).
      session: await ort.InferenceSession.create(path.join(dir, String(newest), MODEL_FILE)),
      text: config.text_pipeline ? await TextClassificationPipeline.load(dir, config.text_pipeline) : undefined,
    });
  }
  return models;
}

function toOrt(t: InferTensor): ort.Tensor {
  const info = dataTypeByName(t.dtype);
  if (!info?.arrayType) throw invalidArgument(`input '${t.name}': dtype ${t.dtype} is not supported`);
  // One copy to a fresh buffer: received bytes need not be aligned for the typed array. (Not t.data.slice():
  // on a Buffer that is a view of the same memory.)
  const bytes = new Uint8Array(t.data);
  return new ort.Tensor(info.ort as 'float32', new info.arrayType(bytes.buffer) as Float32Array, t.shape);
}

function fromOrt(name: string, value: ort.OnnxValue): InferTensor {
  const t = value as ort.Tensor;
  const view = t.data as ArrayBufferView;
  return { name, dtype: dataTypeByOrt(t.type)!.name, shape: [...t.dims], data: new Uint8Array(view.buffer, view.byteOffset, view.byteLength) };
}

async function main(): Promise<void> {
  const root = process.argv[2];
  if (!root) throw new Error('usage: naive-server-entry <model repository>');
  const models = await loadModels(root);
  let counters: EntryCounters | undefined;
  const predict = async (req: PredictRequestMessage) => {
    const model = models.get(req.model);
    if (!model) throw notFound(`naive bench server has no model '${req.model}'`);
    const inputs = req.input_text && model.text ? [model.text.encode(req.input_text)] : req.inputs.map(tensorFromProto);
    const feeds: Record<string, ort.Tensor> = {};
    for (const t of inputs) feeds[t.name] = toOrt(t);
    // Concurrent calls queue inside the binding and run one at a time, each blocking the event loop.
    const results = await model.session.run(feeds);
    counters!.requests++;
    counters!.batches++;
    counters!.rows += inputs[0]?.shape[0] ?? 0;
    // (No computeMs: awaiting run() also waits for the runs queued before it, so it would overstate compute.)
    const outputs = Object.entries(results).map(([name, value]) => fromOrt(name, value));
    const text = req.input_text && model.text ? model.text.decode(outputs) : undefined;
    return {
      model: req.model,
      version: model.version,
      outputs: outputs.map(tensorToProto),
      output_text: text?.label ?? '',
      confidence: text?.confidence ?? 0,
      labels: text?.labels ?? [],
      cached: false,
      request_id: req.options?.request_id || randomUUID(),
    };
  };
  await serveBare('naive bench server', (ipc) => {
    counters = ipc.counters;
    return (call, callback) => {
      predict(call.request).then((response) => callback(null, response), (err: unknown) => callback(toGrpcError(err)));
    };
  });
}

runEntry('naive-server-entry', main);
