/**
 * Child-process entry: the compute ceiling. Raw onnxruntime-node on this process's main thread, no gRPC,
 * no workers, no copies beyond the binding's own: for each model and batch size, session.run on a
 * prepared batch over and over for a fixed time. The best rows/s over batch sizes is what the cores
 * can do for that model; anything tensorgate reaches is measured against it.
 *
 * Run in its own process (by bench/run.ts, with nothing else loading the machine) so its ONNX Runtime
 * thread pools are gone before any other measurement starts.
 *
 * argv[2]: JSON { models, threads: number[], batchSizes: number[], secondsPerPoint }.
 */
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { BUNDLED_MODELS_DIR } from '../src/paths';
import { TextClassificationPipeline } from '../src/pipelines/text-classification';
import { foreignCpuPct, machineCpu, waitForQuiet } from './machine-load';
import { modelConfig, rowElements, seededFloats, SENTENCE, TENSOR_INPUTS, type BenchModel } from './workload';

export interface OrtPoint {
  batch: number;
  runs: number;
  /** Mean wall time of one session.run of this batch. */
  msPerRun: number;
  rowsPerS: number;
  /** CPU used meanwhile by other processes, % of one core (see machine-load.ts). */
  otherCpuPct: number;
}

export interface OrtCeiling {
  model: BenchModel;
  /** intraOpNumThreads of the session. */
  threads: number;
  points: OrtPoint[];
}

export interface OrtCeilingArgs {
  models: BenchModel[];
  threads: number[];
  batchSizes: number[];
  secondsPerPoint: number;
  /** Re-measure a point (up to twice) when other processes used more than this % of one core. */
  maxOtherCpuPct: number;
}

/** The model's input for `batch` copies of the benchmark's single row (the same bytes the clients send). */
async function feeds(model: BenchModel, batch: number): Promise<Record<string, ort.Tensor>> {
  if (model === 'sentiment') {
    const config = await modelConfig(model);
    const pipeline = await TextClassificationPipeline.load(path.join(BUNDLED_MODELS_DIR, model), config.text_pipeline!);
    const row = pipeline.encode(SENTENCE);
    const n = row.shape[1]!;
    const ids = new BigInt64Array(batch * n);
    for (let b = 0; b < batch; b++) ids.set(new BigInt64Array(row.data.buffer, row.data.byteOffset, n), b * n);
    return { [config.text_pipeline!.input]: new ort.Tensor('int64', ids, [batch, n]) };
  }
  const { name, dims } = TENSOR_INPUTS[model];
  const one = seededFloats(rowElements(model), 42);
  const data = new Float32Array(batch * one.length);
  for (let b = 0; b < batch; b++) data.set(one, b * one.length);
  return { [name]: new ort.Tensor('float32', data, [batch, ...dims]) };
}

async function measurePoint(session: ort.InferenceSession, input: Record<string, ort.Tensor>, batch: number, seconds: number): Promise<OrtPoint> {
  // Warm-up: first runs allocate arenas and pick kernels.
  const warmUntil = performance.now() + Math.min(300, seconds * 200);
  while (performance.now() < warmUntil) await session.run(input);
  let runs = 0;
  const machine0 = machineCpu();
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const until = started + seconds * 1000;
  let now = started;
  while (now < until) {
    await session.run(input);
    runs++;
    now = performance.now();
  }
  const ms = now - started;
  const cpu = process.cpuUsage(cpu0);
  const otherCpuPct = foreignCpuPct(machine0, machineCpu(), cpu.user + cpu.system, ms);
  return { batch, runs, msPerRun: ms / runs, rowsPerS: (runs * batch) / (ms / 1000), otherCpuPct };
}

/** A point, measured again (at most twice) while other processes disturb it; the least disturbed is kept. */
async function quietPoint(session: ort.InferenceSession, input: Record<string, ort.Tensor>, batch: number, args: OrtCeilingArgs): Promise<OrtPoint> {
  let best: OrtPoint | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    await waitForQuiet(args.maxOtherCpuPct / 2, 60_000, (line) => console.error(line));
    const p = await measurePoint(session, input, batch, args.secondsPerPoint);
    if (!best || p.otherCpuPct < best.otherCpuPct) best = p;
    if (p.otherCpuPct <= args.maxOtherCpuPct) break;
    console.error(`  (ort batch ${batch}: other processes used ${p.otherCpuPct.toFixed(0)}% of a core; measuring again)`);
  }
  return best!;
}

async function ceiling(model: BenchModel, threads: number, args: OrtCeilingArgs): Promise<OrtCeiling> {
  const maxBatch = (await modelConfig(model)).max_batch_size || Infinity;
  const session = await ort.InferenceSession.create(path.join(BUNDLED_MODELS_DIR, model, '1', 'model.onnx'), {
    intraOpNumThreads: threads,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    logSeverityLevel: 4,
  });
  const points: OrtPoint[] = [];
  for (const batch of args.batchSizes.filter((b) => b <= maxBatch)) {
    points.push(await quietPoint(session, await feeds(model, batch), batch, args));
  }
  await session.release();
  return { model, threads, points };
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '') as OrtCeilingArgs;
  const results: OrtCeiling[] = [];
  for (const model of args.models) {
    for (const threads of args.threads) {
      const c = await ceiling(model, threads, args);
      const best = Math.max(...c.points.map((p) => p.rowsPerS));
      console.error(`  ort ${model} threads=${threads}: ${c.points.map((p) => `b${p.batch} ${p.rowsPerS.toFixed(0)}/s`).join(', ')} (best ${best.toFixed(0)} rows/s)`);
      results.push(c);
    }
  }
  process.send!(results, () => process.exit(0));
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error('bench ceiling-ort failed:', err);
    process.exit(1);
  });
}
