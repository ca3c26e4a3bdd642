/**
 * `tensorgate optimize MODEL --to VERSION --graph-optimize LEVEL`: ONNX Runtime's offline graph optimisation
 * (constant folding, node fusions, layout changes) written as a new version of the model, never over one, and
 * checked before it is put in place: both versions run on the same inputs (made from the model's metadata) and
 * the largest difference is reported. The new version appears in the repository in one rename, whole or not
 * at all, so a server polling the repository never sees half a file.
 *
 * Why ONNX Runtime and not our own graph rewriting: its optimizer is the one that will run the model, and
 * `optimizedModelFilePath` writes exactly what it would otherwise redo at every load. `all` includes layout
 * optimisations specific to this machine's CPU (NCHWc); `extended` is portable between machines.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { checkModelName } from '../repository/model-name';
import { MODEL_FILE } from '../repository/model-repository';
import { listVersionFolders } from '../repository/version-folders';
import { NativeSession } from '../runtime/ort-session';
import type { SessionSettings } from '../runtime/messages';
import { difference } from './output-difference';
import { seededInputs } from './sample-inputs';

export const GRAPH_LEVELS = ['basic', 'extended', 'all'] as const;
export type GraphLevel = (typeof GRAPH_LEVELS)[number];

export interface OptimizeRequest {
  /** The model repository. */
  models: string;
  model: string;
  /** The version to write; must not exist. */
  to: number;
  /** The version to read; default: the newest. */
  from?: number;
  graphOptimize: GraphLevel;
}

export interface OptimizeReport {
  model: string;
  from: number;
  to: number;
  level: GraphLevel;
  bytesBefore: number;
  bytesAfter: number;
  /** Per output: the largest absolute difference between the versions over the check inputs. */
  maxAbsError: Record<string, number>;
  /** Rows of each check input (dynamic dimensions are given this size). */
  checkRows: number;
}

const CHECK_ROWS = 4;
const SETTINGS: SessionSettings = { intraOpThreads: 1, interOpThreads: 1, graphOptimizationLevel: 'disabled', executionMode: 'sequential', executionProviders: ['cpu'] };

export async function optimizeModel(request: OptimizeRequest): Promise<OptimizeReport> {
  checkModelName(request.model);
  if (!Number.isInteger(request.to) || request.to < 1) throw new Error(`--to must be a version number (1 or more), got ${request.to}`);
  if (!(GRAPH_LEVELS as readonly string[]).includes(request.graphOptimize)) throw new Error(`--graph-optimize must be one of ${GRAPH_LEVELS.join(', ')}, got '${request.graphOptimize}'`);
  const folder = path.join(request.models, request.model);
  if (!fs.existsSync(folder)) throw new Error(`no model '${request.model}' in ${request.models}`);
  const versions = await listVersionFolders(folder);
  const from = request.from ?? Math.max(...versions);
  if (!versions.includes(from)) throw new Error(`model '${request.model}' has no version ${from} (it has ${versions.join(', ') || 'none'})`);
  const target = path.join(folder, String(request.to));
  if (fs.existsSync(target)) throw new Error(`version ${request.to} of model '${request.model}' exists (${target}); optimize never overwrites: choose another --to`);
  const source = path.join(folder, String(from), MODEL_FILE);

  // Written beside the target and renamed into place once checked.
  const staging = fs.mkdtempSync(path.join(folder, `.optimize-${request.to}-`));
  fs.chmodSync(staging, 0o755); // as the version folders beside it (mkdtemp makes it private to this user)
  try {
    const written = path.join(staging, MODEL_FILE);
    const writer = await ort.InferenceSession.create(source, { graphOptimizationLevel: request.graphOptimize, optimizedModelFilePath: written, logSeverityLevel: 3 });
    await writer.release();
    const before = new NativeSession(source, SETTINGS);
    const after = new NativeSession(written, SETTINGS);
    const maxAbsError: Record<string, number> = {};
    try {
      const inputs = seededInputs(before.inputs, CHECK_ROWS);
      const names = before.outputs.map((o) => o.name);
      const a = before.run(inputs, names).outputs;
      const b = after.run(inputs, names).outputs;
      for (const [i, name] of names.entries()) maxAbsError[name] = difference(a[i]!, b[i]!).maxAbs;
    } finally {
      before.dispose();
      after.dispose();
    }
    fs.renameSync(staging, target);
    return { model: request.model, from, to: request.to, level: request.graphOptimize, bytesBefore: fs.statSync(source).size, bytesAfter: fs.statSync(path.join(target, MODEL_FILE)).size, maxAbsError, checkRows: CHECK_ROWS };
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}
