/**
 * `tensorgate compare MODEL A B`: versions A and B of a model run on the same rows, and a report of what B
 * costs and what it changes against A: model file size, latency and throughput at batch 1 and at each
 * version's best batch, how far B's outputs are from A's, top-1 agreement, and task accuracy of each when the
 * rows carry labels. How a user weighs an optimised version (optimize's int8, fp16, pruned) or a distilled
 * student against the original.
 *
 * Both versions load with the session settings the server would give them (config.yaml `session`), from files
 * checked as the server checks them (inside the repository, pinned sha256), except that an unset thread count
 * (intra_op_threads 0: the server's share of the cores) becomes 1: both versions then get the same, and the
 * numbers mean the same on another machine. Runs happen here, on this thread, through NativeSession: nothing
 * but ONNX Runtime's own time is on the clock.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MODEL_FILE } from '../repository/model-repository';
import { readFolderConfig } from '../repository/folder-config';
import { checkVersionFile } from '../repository/model-file';
import { loadConfiguredParts, openModelFolder } from '../repository/model-folder';
import { modelNameProblem } from '../repository/model-name';
import { listVersionFolders, modelFolders } from '../repository/version-folders';
import type { SessionSettings } from '../runtime/messages';
import { NativeSession } from '../runtime/ort-session';
import { compareOutputs, type OutputChange, type TaskAccuracy } from './compare-accuracy';
import { readDataFile, seededRows, type CompareRows } from './compare-data';
import { batchRows, measureSpeed, type Speed } from './compare-speed';

export type { OutputChange, Speed, TaskAccuracy };

export const DEFAULT_BATCH_SIZES = [1, 2, 4, 8, 16, 32, 64];
export const DEFAULT_SECONDS = 1;

export interface CompareRequest {
  /** The model repository. */
  models: string;
  model: string;
  a: number;
  b: number;
  /** A JSON Lines file of rows (compare-data.ts); default: seeded rows from the model's metadata. */
  data?: string;
  /** Default: DEFAULT_BATCH_SIZES up to the config's max_batch_size; [1] for a model without a batch dimension. */
  batchSizes?: number[];
  /** ONNX Runtime time per version per batch size. */
  seconds?: number;
  /** Called as the work goes: the share done (0-1) and what is running. */
  progress?: (done: number, phase: string) => void;
}

export interface VersionReport {
  version: number;
  /** model.onnx size in bytes. */
  bytes: number;
  /** One per batch size, smallest first. */
  speeds: Speed[];
  /** Absent when batch 1 was not measured (--batch-sizes without 1). */
  batch1?: Speed;
  /** The batch size with the highest throughput. */
  best: Speed;
}

export interface CompareReport {
  model: string;
  a: VersionReport;
  b: VersionReport;
  /** B's model.onnx size over A's. */
  sizeRatio: number;
  /** Outputs both versions have, in A's order. */
  outputs: OutputChange[];
  /** Outputs only one of the versions has: not compared. */
  unmatchedOutputs: string[];
  accuracy?: TaskAccuracy;
  rows: number;
  /** Where the rows came from. */
  inputs: string;
  /** Rows per run in the accuracy pass. */
  accuracyBatch: number;
  intraOpThreads: number;
  /** False when the config left threads to the server (0) and 1 was used. */
  threadsFromConfig: boolean;
  secondsPerBatchSize: number;
  batchSizes: number[];
}

export async function compareVersions(request: CompareRequest): Promise<CompareReport> {
  const { models, model } = request;
  const nameProblem = modelNameProblem(model);
  if (nameProblem) throw new Error(nameProblem);
  for (const v of [request.a, request.b]) if (!Number.isInteger(v) || v < 1) throw new Error(`a version is a positive integer (a version folder of the model), got ${v}`);
  if (!fs.existsSync(path.join(models, model))) {
    const known = await modelFolders(models).catch(() => [] as string[]);
    throw new Error(`no model '${model}' in ${models} (${known.length > 0 ? `it has ${known.sort().join(', ')}` : 'no model folders there'})`);
  }
  const folder = await openModelFolder(models, model);
  const onDisk = (await listVersionFolders(folder.dir)).sort((x, y) => x - y);
  for (const v of [request.a, request.b]) {
    if (!onDisk.includes(v)) throw new Error(`model '${model}' has no version ${v} (it has ${onDisk.join(', ') || 'none'})`);
  }
  const { config } = await readFolderConfig(folder.root, folder.dir, model).catch((err: Error) => {
    throw new Error(`model '${model}': ${err.message}`);
  });
  if (config.generation) throw new Error(`model '${model}' is a generation model (config generation:); compare runs single-pass models, not decode loops`);
  const parts = await loadConfiguredParts(folder, config);
  if (parts.reason) throw new Error(`model '${model}': ${parts.reason}`);
  const files = await Promise.all([request.a, request.b].map((v) => checkVersionFile(folder, v, MODEL_FILE, config.versions[String(v)]?.sha256)));

  const threadsFromConfig = config.session.intra_op_threads > 0;
  const settings: SessionSettings = {
    intraOpThreads: threadsFromConfig ? config.session.intra_op_threads : 1,
    interOpThreads: config.session.inter_op_threads,
    graphOptimizationLevel: config.session.graph_optimization_level,
    executionMode: config.session.execution_mode,
    executionProviders: config.session.execution_providers,
  };
  const load = (v: number, file: string) => {
    const sha256 = config.versions[String(v)]?.sha256;
    try {
      return new NativeSession(file, sha256 === undefined ? settings : { ...settings, sha256 });
    } catch (err) {
      throw new Error(`ONNX Runtime cannot load version ${v} of '${model}': ${(err as Error).message}`);
    }
  };
  const a = load(request.a, files[0]!.path);
  let b: NativeSession | undefined;
  try {
    b = load(request.b, files[1]!.path);
    const sessions = [a, b] as const;
    const inputsOf = (s: NativeSession) => s.inputs.map((i) => `${i.name} ${i.dtype}`).join(', ');
    if (inputsOf(a) !== inputsOf(b)) throw new Error(`versions ${request.a} and ${request.b} of '${model}' take different inputs (${inputsOf(a)} vs ${inputsOf(b)}); compare needs the same inputs`);

    const batched = config.max_batch_size > 0;
    const target = { specs: a.inputs, batched, ...(parts.textPipeline ? { pipeline: parts.textPipeline } : {}) };
    const rows: CompareRows = request.data !== undefined ? readDataFile(request.data, target) : seededRows(target);
    const sizes = batchSizes(request.batchSizes, config.max_batch_size, model);
    const seconds = request.seconds ?? DEFAULT_SECONDS;
    const names = a.outputs.map((o) => o.name).filter((n) => b!.outputs.some((o) => o.name === n));
    const unmatched = [...a.outputs, ...b.outputs].map((o) => o.name).filter((n) => !names.includes(n));

    // Progress: the accuracy pass is one step, each batch size another.
    const steps = 1 + sizes.length;
    const accuracyBatch = sizes[sizes.length - 1]!;
    const compared = compareOutputs(sessions, names, rows, accuracyBatch, config.text_pipeline?.output, (done) => request.progress?.(done / steps, 'outputs'));
    const speeds: [Speed[], Speed[]] = [[], []];
    for (const [k, size] of sizes.entries()) {
      const batches = batchRows(rows.count, size).map((indices) => rows.batch(indices));
      const [sa, sb] = measureSpeed(sessions, batches, size, seconds, (done) => request.progress?.((1 + k + done) / steps, `batch ${size}`));
      speeds[0].push(sa);
      speeds[1].push(sb);
      await new Promise((resolve) => setImmediate(resolve)); // let the progress bar's output out between batch sizes
    }
    const version = (v: number, bytes: number, list: Speed[]): VersionReport => ({
      version: v,
      bytes,
      speeds: list,
      ...(list[0]!.batch === 1 ? { batch1: list[0]! } : {}),
      best: list.reduce((x, y) => (y.rowsPerSecond > x.rowsPerSecond ? y : x)),
    });
    return {
      model,
      a: version(request.a, files[0]!.size, speeds[0]),
      b: version(request.b, files[1]!.size, speeds[1]),
      sizeRatio: files[1]!.size / files[0]!.size,
      outputs: compared.outputs,
      unmatchedOutputs: [...new Set(unmatched)],
      ...(compared.accuracy ? { accuracy: compared.accuracy } : {}),
      rows: rows.count,
      inputs: rows.source,
      accuracyBatch,
      intraOpThreads: settings.intraOpThreads,
      threadsFromConfig,
      secondsPerBatchSize: seconds,
      batchSizes: sizes,
    };
  } finally {
    a.dispose();
    b?.dispose();
  }
}

/** The batch sizes to measure, smallest first: the given ones checked against max_batch_size, or the defaults under it. */
function batchSizes(given: number[] | undefined, maxBatch: number, model: string): number[] {
  if (given !== undefined) {
    for (const size of given) {
      if (!Number.isInteger(size) || size < 1) throw new Error(`--batch-sizes takes positive integers, got ${size}`);
      if (maxBatch === 0 && size !== 1) throw new Error(`model '${model}' has no batch dimension (max_batch_size 0): --batch-sizes can only be 1, got ${size}`);
      if (maxBatch > 0 && size > maxBatch) throw new Error(`--batch-sizes ${size} is above model '${model}''s max_batch_size ${maxBatch}`);
    }
    if (given.length === 0) throw new Error('--batch-sizes names no batch size');
    return [...new Set(given)].sort((x, y) => x - y);
  }
  return maxBatch === 0 ? [1] : DEFAULT_BATCH_SIZES.filter((s) => s <= maxBatch);
}
