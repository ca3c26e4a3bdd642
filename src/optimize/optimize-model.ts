/**
 * `tensorgate optimize MODEL --to VERSION [passes]`: an optimised copy of a model version written as a new
 * version of the model, never over one, and checked before it is put in place: both versions run on the same
 * inputs (made from the model's metadata) and the largest difference per output is reported. The new version
 * appears in the repository in one rename, whole or not at all, so a server polling the repository never sees
 * half a file.
 *
 * Passes run in a fixed order, each on what the one before wrote: pruning (the float weights it ranks are the
 * original ones), then int8 or float16 (one or the other: both store the weights), then ONNX Runtime's graph
 * optimisation, which fuses what the others wrote (e.g. the int8 MatMul chain into DynamicQuantizeMatMul).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeModel, encodeModel } from '../onnx/onnx-proto';
import { readFolderConfig } from '../repository/folder-config';
import { checkModelName } from '../repository/model-name';
import { MODEL_FILE } from '../repository/model-repository';
import { listVersionFolders } from '../repository/version-folders';
import { selectVersions } from '../repository/version-policy';
import type { SessionSettings } from '../runtime/messages';
import { NativeSession } from '../runtime/ort-session';
import { convertToFloat16, type Fp16Report } from './convert-fp16';
import { GRAPH_LEVELS, graphOptimizeFile, type GraphLevel } from './graph-optimize';
import { difference } from './output-difference';
import { parsePruneSpec, pruneMagnitude, type PruneReport } from './prune-magnitude';
import { quantizeInt8Dynamic, type QuantizeReport } from './quantize-int8';
import { seededInputs } from './sample-inputs';

export const QUANTIZE_MODES = ['int8-dynamic'] as const;

export interface OptimizeRequest {
  /** The model repository. */
  models: string;
  model: string;
  /** The version to write; must not exist. */
  to: number;
  /** The version to read; default: the one a request naming no version gets (see servedVersion). */
  from?: number;
  /** `magnitude:FRACTION`. */
  prune?: string;
  quantize?: string;
  fp16?: boolean;
  graphOptimize?: GraphLevel;
}

export interface OptimizeReport {
  model: string;
  from: number;
  to: number;
  /** The passes applied, in order, as named on the command line. */
  passes: string[];
  prune?: PruneReport;
  quantize?: QuantizeReport;
  fp16?: Fp16Report;
  bytesBefore: number;
  bytesAfter: number;
  /** Per output: the largest absolute difference between the versions over the check inputs. */
  maxAbsError: Record<string, number>;
  /** Rows of each check input (dynamic dimensions are given this size). */
  checkRows: number;
}

const CHECK_ROWS = 4;
const SETTINGS: SessionSettings = { intraOpThreads: 1, interOpThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential', executionProviders: ['cpu'] };

/** Checks the request and names its passes before anything is read or written. */
function describePasses(request: OptimizeRequest): string[] {
  const passes: string[] = [];
  if (request.prune !== undefined) {
    parsePruneSpec(request.prune);
    passes.push(`prune ${request.prune}`);
  }
  if (request.quantize !== undefined) {
    if (!(QUANTIZE_MODES as readonly string[]).includes(request.quantize)) throw new Error(`--quantize must be one of ${QUANTIZE_MODES.join(', ')}, got '${request.quantize}'`);
    if (request.fp16) throw new Error('--quantize and --fp16 both store the weights anew: choose one');
    passes.push(`quantize ${request.quantize}`);
  }
  if (request.fp16) passes.push('fp16');
  if (request.graphOptimize !== undefined) {
    if (!(GRAPH_LEVELS as readonly string[]).includes(request.graphOptimize)) throw new Error(`--graph-optimize must be one of ${GRAPH_LEVELS.join(', ')}, got '${request.graphOptimize}'`);
    if (request.fp16 && request.graphOptimize === 'all') {
      // Measured: ONNX Runtime's CPU-specific 'all' level folds the float16 weights back into float32 ones
      // (mlp 170.7 -> 341.4 KB), undoing the pass; basic and extended keep them.
      throw new Error("--fp16 with --graph-optimize all would undo itself: ONNX Runtime's 'all' level writes the float16 weights back as float32; use --graph-optimize extended");
    }
    passes.push(`graph-optimize ${request.graphOptimize}`);
  }
  if (passes.length === 0) throw new Error('name at least one pass: --prune magnitude:FRACTION, --quantize int8-dynamic, --fp16, --graph-optimize basic|extended|all');
  return passes;
}

export async function optimizeModel(request: OptimizeRequest): Promise<OptimizeReport> {
  checkModelName(request.model);
  if (!Number.isInteger(request.to) || request.to < 1) throw new Error(`--to must be a version number (1 or more), got ${request.to}`);
  const passes = describePasses(request);
  const folder = path.join(request.models, request.model);
  if (!fs.existsSync(folder)) throw new Error(`no model '${request.model}' in ${request.models}`);
  const versions = await listVersionFolders(folder);
  const from = request.from ?? (await servedVersion(request.models, folder, request.model, versions)) ?? Math.max(...versions);
  if (!versions.includes(from)) throw new Error(`model '${request.model}' has no version ${from} (it has ${versions.join(', ') || 'none'})`);
  const target = path.join(folder, String(request.to));
  if (fs.existsSync(target)) throw new Error(`version ${request.to} of model '${request.model}' exists (${target}); optimize never overwrites: choose another --to`);
  const source = path.join(folder, String(from), MODEL_FILE);

  // Written beside the target and renamed into place once checked.
  const staging = fs.mkdtempSync(path.join(folder, `.optimize-${request.to}-`));
  fs.chmodSync(staging, 0o755); // as the version folders beside it (mkdtemp makes it private to this user)
  try {
    const written = path.join(staging, MODEL_FILE);
    const report: OptimizeReport = { model: request.model, from, to: request.to, passes, bytesBefore: fs.statSync(source).size, bytesAfter: 0, maxAbsError: {}, checkRows: CHECK_ROWS };
    if (request.prune !== undefined || request.quantize !== undefined || request.fp16) {
      const model = decodeModel(fs.readFileSync(source));
      if (request.prune !== undefined) report.prune = pruneMagnitude(model, parsePruneSpec(request.prune));
      if (request.quantize !== undefined) report.quantize = quantizeInt8Dynamic(model);
      if (request.fp16) report.fp16 = convertToFloat16(model);
      fs.writeFileSync(written, encodeModel(model));
    } else {
      fs.copyFileSync(source, written);
    }
    if (request.graphOptimize !== undefined) {
      const unoptimized = path.join(staging, 'unoptimized.onnx');
      fs.renameSync(written, unoptimized);
      await graphOptimizeFile(unoptimized, written, request.graphOptimize);
      fs.rmSync(unoptimized);
    }
    report.maxAbsError = checkAgainst(source, written);
    fs.renameSync(staging, target);
    report.bytesAfter = fs.statSync(path.join(target, MODEL_FILE)).size;
    return report;
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

/**
 * The version a request that names none gets: the stable version of a canary split (the heaviest weight), else
 * the newest the version policy serves. That is what a user means by "the model" when an int8 or fp16 version
 * sits beside it unserved or weighted (the bundled models have one). Undefined when the config does not read.
 */
async function servedVersion(models: string, folder: string, model: string, onDisk: number[]): Promise<number | undefined> {
  try {
    const { config } = await readFolderConfig(fs.realpathSync(models), folder, model);
    const weights = Object.entries(config.canary?.weights ?? {});
    if (weights.length > 0) return Number(weights.reduce((best, w) => (w[1] > best[1] ? w : best))[0]);
    const served = selectVersions(onDisk, config.version_policy);
    return served.length > 0 ? Math.max(...served) : undefined;
  } catch {
    return undefined; // the newest then; a config that does not read is the server's to report
  }
}

/** Runs both files on the same seeded inputs; throws when the new one does not load or run, or its outputs changed shape. */
function checkAgainst(source: string, written: string): Record<string, number> {
  const before = new NativeSession(source, SETTINGS);
  let after: NativeSession | undefined;
  try {
    try {
      after = new NativeSession(written, SETTINGS);
    } catch (err) {
      throw new Error(`the optimised model does not load in ONNX Runtime: ${(err as Error).message}`);
    }
    const inputs = seededInputs(before.inputs, CHECK_ROWS);
    const names = before.outputs.map((o) => o.name);
    const a = before.run(inputs, names).outputs;
    const b = after.run(inputs, names).outputs;
    const maxAbsError: Record<string, number> = {};
    for (const [i, name] of names.entries()) {
      if (a[i]!.dtype !== b[i]!.dtype || a[i]!.shape.join() !== b[i]!.shape.join()) {
        throw new Error(`output '${name}' changed: ${a[i]!.dtype}[${a[i]!.shape}] before, ${b[i]!.dtype}[${b[i]!.shape}] after`);
      }
      maxAbsError[name] = difference(a[i]!, b[i]!).maxAbs;
    }
    return maxAbsError;
  } finally {
    before.dispose();
    after?.dispose();
  }
}
