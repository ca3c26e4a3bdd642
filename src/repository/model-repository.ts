/**
 * ModelRepository: the folder of models (models/<name>/config.yaml, or Triton's config.pbtxt converted by
 * triton/, and models/<name>/<version>/model.onnx),
 * what is loaded from it, and the state of every model version. A model or version that fails to load
 * (missing file, corrupt ONNX, bad config, absent execution provider) is kept with state UNAVAILABLE and
 * the reason, and everything else is served: one broken model never takes the server down.
 *
 * Events: 'version-ready' (ModelVersionEntry, ModelSchedule) when a version can take traffic,
 * 'version-unloaded' (ModelVersionEntry) before its session goes, 'model-state' (ModelEntry) after each model (re)load.
 */
import { EventEmitter } from 'node:events';
import * as path from 'node:path';
import { echo, notFound, unavailable } from '../core/errors';
import { versionKey } from '../core/model-key';
import type { TensorSpec } from '../core/tensor';
import type { TextClassificationPipeline } from '../pipelines/text-classification';
import type { GenerationModel } from '../generation/generation-model';
import { readDecoderLayout, type DecoderLayout } from '../generation/decoder-layout';
import type { ExecutionPool } from '../runtime/execution-pool';
import type { ModelSchedule } from '../scheduling/scheduler';
import type { SessionSettings } from '../runtime/messages';
import { checkSpecs, checkTextPipeline } from './spec-check';
import { warmupRuns } from './warmup';
import { checkProviders, listVersionFolders, modelFolders } from './version-folders';
import { batchingProblems, schedulePolicy, soloIneligibility } from './schedule-policy';
import { CONFIG_FILE, type ModelConfig } from './model-config';
import { readFolderConfig } from './folder-config';
import { describePolicy, selectVersions } from './version-policy';
import { checkModelName, modelNameProblem } from './model-name';
import { loadConfiguredParts, openModelFolder, type ModelFolder } from './model-folder';
import { checkVersionFile, type CheckedModelFile } from './model-file';

export const MODEL_FILE = 'model.onnx';

export type VersionState = 'LOADING' | 'READY' | 'UNAVAILABLE' | 'UNLOADING';

export interface ModelVersionEntry {
  model: string;
  version: string;
  /** The execution pool's session key. */
  key: string;
  state: VersionState;
  reason: string;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /** Generation models: how the decoder is fed (read from the session at load). */
  decoder?: DecoderLayout;
}

export interface ModelEntry {
  name: string;
  dir: string;
  /** Undefined when the config is invalid (see `reason`). */
  config: ModelConfig | undefined;
  /** The file the config came from: config.yaml or config.pbtxt. */
  configFile: string;
  /** Config settings accepted but not honoured, or honoured differently (a Triton config.pbtxt's); logged at load. */
  warnings: string[];
  reason: string;
  settings: SessionSettings | undefined;
  textPipeline: TextClassificationPipeline | undefined;
  /** Present for models with a `generation:` section: tokenizer, limits, sampling defaults. */
  generation: GenerationModel | undefined;
  /** Newest first. */
  versions: ModelVersionEntry[];
  /** How long the last (re)load of this model took. */
  loadMs: number;
}

export interface ModelRepositoryOptions {
  root: string;
  pool: ExecutionPool;
  /** Intra-op threads for sessions whose config leaves it at 0. */
  defaultIntraOpThreads: number;
}

/** See the header comment; listeners run synchronously inside (re)loads, so they must not throw. */
export interface RepositoryEvents {
  'version-ready': [version: ModelVersionEntry, schedule: ModelSchedule];
  'version-unloaded': [version: ModelVersionEntry];
  'model-state': [model: ModelEntry];
  'reload-failed': [model: ModelEntry, reason: string];
}

export class ModelRepository extends EventEmitter<RepositoryEvents> {
  private readonly models = new Map<string, ModelEntry>();
  /** Loads of each version so far (versionKey without generation -> count), for the next load's session key. */
  private readonly generations = new Map<string, number>();
  /** Per model: the end of its last queued load or unload (serially()). */
  private readonly queues = new Map<string, Promise<void>>();
  private drained: (key: string) => Promise<void> = () => Promise.resolve();
  /** True while loadAll() runs: an unknown model may simply not be loaded yet. */
  private loading = false;

  constructor(private readonly options: ModelRepositoryOptions) {
    super();
  }

  get root(): string {
    return this.options.root;
  }

  /**
   * Scans the root folder and loads every model in it, or only the folders named in `only` (explicit model
   * control); never throws for a single bad model, but names in `only` that are no folder of the repository are
   * an error (a typo would otherwise serve nothing, silently).
   */
  async loadAll(only?: readonly string[]): Promise<void> {
    this.loading = true;
    let names: string[];
    try {
      names = (await modelFolders(this.options.root)).sort();
    } catch (err) {
      this.loading = false;
      throw new Error(`model repository '${this.options.root}' cannot be read: ${(err as Error).message}`);
    }
    if (only) {
      const bad = only.map(modelNameProblem).filter((p) => p !== undefined);
      if (bad.length > 0) this.loading = false;
      if (bad.length > 0) throw new Error(bad.join('; '));
      const absent = only.filter((n) => !names.includes(n));
      if (absent.length > 0) {
        this.loading = false;
        throw new Error(`no model folder ${absent.map((n) => `'${n}'`).join(', ')} in '${this.options.root}' (folders: ${names.join(', ') || 'none'})`);
      }
      names = names.filter((n) => only.includes(n));
    }
    // One model at a time: loads already use every worker, and a steady order keeps logs readable.
    try {
      for (const name of names) await this.loadModel(name);
    } finally {
      this.loading = false;
    }
  }

  /**
   * (Re)loads one model folder: config, then each version its policy selects. A first load is visible at once
   * (its versions LOADING). A reload builds the new load beside the one serving, then switches (see switchTo).
   * Loads and unloads of one model run one at a time, in the order asked.
   */
  loadModel(name: string): Promise<ModelEntry> {
    // Every door checks names too; here so that no caller can make the repository open a path (INVALID_ARGUMENT).
    checkModelName(name);
    return this.serially(name, async () => {
      const previous = this.models.get(name);
      const entry: ModelEntry = { name, dir: path.join(this.options.root, name), config: undefined, configFile: CONFIG_FILE, warnings: [], reason: '', settings: undefined, textPipeline: undefined, generation: undefined, versions: [], loadMs: 0 };
      if (!previous) this.models.set(name, entry);
      await this.fill(entry);
      if (!previous) {
        this.emit('model-state', entry);
        return entry;
      }
      return this.switchTo(previous, entry);
    });
  }

  /** Reads the folder's config and loads the versions its policy selects into `entry` (not yet serving). */
  private async fill(entry: ModelEntry): Promise<void> {
    const { name } = entry;
    const started = performance.now();
    // Everything below reads from the folder's realpath, checked to be inside the repository (confined-path.ts);
    // a folder that leads outside is not even listed.
    let folder: ModelFolder;
    try {
      folder = await openModelFolder(this.options.root, name);
    } catch (err) {
      entry.reason = (err as Error).message;
      entry.loadMs = performance.now() - started;
      return;
    }
    const onDisk = await listVersionFolders(folder.dir);
    try {
      const read = await readFolderConfig(folder.root, folder.dir, name);
      entry.config = read.config;
      entry.configFile = read.file;
      entry.warnings = read.warnings;
    } catch (err) {
      entry.reason = (err as Error).message;
      entry.versions = onDisk.sort((a, b) => b - a).map((v) => this.versionEntry(name, v, 'UNAVAILABLE', entry.reason));
      entry.loadMs = performance.now() - started;
      return;
    }
    const config = entry.config;
    entry.settings = {
      intraOpThreads: config.session.intra_op_threads || this.options.defaultIntraOpThreads,
      interOpThreads: config.session.inter_op_threads,
      graphOptimizationLevel: config.session.graph_optimization_level,
      executionMode: config.session.execution_mode,
      executionProviders: config.session.execution_providers,
    };
    ({ textPipeline: entry.textPipeline, generation: entry.generation, reason: entry.reason } = await loadConfiguredParts(folder, config));

    const selected = selectVersions(onDisk, config.version_policy);
    // Versions named in a `specific` policy but absent on disk are reported, not silently dropped.
    const missing = 'specific' in config.version_policy ? config.version_policy.specific.filter((v) => !onDisk.includes(v)) : [];
    for (const v of missing) {
      entry.versions.push(this.versionEntry(name, v, 'UNAVAILABLE', `version folder '${v}' does not exist (version policy ${describePolicy(config.version_policy)})`));
    }
    if (selected.length === 0 && missing.length === 0) {
      entry.reason ||= `no version folders (positive integers containing ${MODEL_FILE}) in '${entry.dir}'`;
    }
    for (const v of selected) entry.versions.push(await this.loadVersion(entry, folder, v));
    entry.versions.sort((a, b) => Number(b.version) - Number(a.version));
    entry.loadMs = performance.now() - started;
  }

  /**
   * The switch of a reload, with no request failed by it:
   * - a version whose new load is READY takes every request from here on (one synchronous map update);
   * - a version whose new load failed keeps serving its previous load, which says so in its reason, and
   *   'reload-failed' is emitted; when nothing of the new load is READY the previous model stays as it was;
   * - the previous load's versions that were replaced or dropped get no new requests; once the requests they
   *   are serving finish (the drain), their sessions are released.
   */
  private async switchTo(previous: ModelEntry, entry: ModelEntry): Promise<ModelEntry> {
    const serving = previous.versions.filter((v) => v.state === 'READY');
    const failed = (v: ModelVersionEntry) => `version ${v.version}: ${v.reason || v.state}`;
    if (serving.length > 0 && !entry.versions.some((v) => v.state === 'READY')) {
      const why = entry.reason || entry.versions.map(failed).join('; ') || 'no versions';
      for (const v of serving) v.reason = `a reload failed (${why}); this version keeps serving its previous load`;
      this.emit('reload-failed', previous, why);
      return previous;
    }
    const kept = new Set<ModelVersionEntry>();
    entry.versions = entry.versions.map((v) => {
      const old = v.state === 'READY' ? undefined : serving.find((o) => o.version === v.version);
      if (!old) return v;
      kept.add(old);
      old.reason = `a reload failed (${v.reason}); this version keeps serving its previous load`;
      this.emit('reload-failed', entry, failed(v));
      return old;
    });
    this.models.set(entry.name, entry);
    this.emit('model-state', entry);
    const retired = serving.filter((v) => !kept.has(v));
    await this.retire(retired);
    return entry;
  }

  /** Versions no request can reach any more: wait for the ones in flight, then release the sessions. */
  private async retire(versions: ModelVersionEntry[]): Promise<void> {
    for (const v of versions) v.state = 'UNLOADING';
    await Promise.all(versions.map((v) => this.drained(v.key)));
    for (const v of versions) {
      this.emit('version-unloaded', v);
      await this.options.pool.unload(v.key);
    }
  }

  /** Runs `task` after every earlier load or unload of the model has finished. */
  private serially<T>(name: string, task: () => Promise<T>): Promise<T> {
    const run = (this.queues.get(name) ?? Promise.resolve()).then(task, task);
    const tail = run.then(() => undefined, () => undefined);
    this.queues.set(name, tail);
    void tail.then(() => {
      if (this.queues.get(name) === tail) this.queues.delete(name);
    });
    return run;
  }

  private versionEntry(model: string, version: number, state: VersionState, reason: string): ModelVersionEntry {
    // Every load of a version gets its own session key, so a reload can load beside the load that serves.
    const base = versionKey(model, version);
    const generation = (this.generations.get(base) ?? 0) + 1;
    this.generations.set(base, generation);
    return { model, version: String(version), key: versionKey(model, version, generation), state, reason, inputs: [], outputs: [] };
  }

  private async loadVersion(entry: ModelEntry, folder: ModelFolder, version: number): Promise<ModelVersionEntry> {
    const v = this.versionEntry(entry.name, version, 'LOADING', '');
    const config = entry.config!;
    if (entry.reason) {
      return { ...v, state: 'UNAVAILABLE', reason: entry.reason };
    }
    // Inside the repository, and the sha256 the config gives, before ONNX Runtime sees a byte (model-file.ts).
    const sha256 = config.versions[String(version)]?.sha256;
    let checked: CheckedModelFile;
    try {
      checked = await checkVersionFile(folder, version, MODEL_FILE, sha256);
    } catch (err) {
      return { ...v, state: 'UNAVAILABLE', reason: (err as Error).message };
    }
    const providerProblem = checkProviders(entry.settings!.executionProviders);
    if (providerProblem) return { ...v, state: 'UNAVAILABLE', reason: providerProblem };
    let warmup;
    try {
      warmup = await warmupRuns(folder.root, folder.dir, config.warmup);
    } catch (err) {
      return { ...v, state: 'UNAVAILABLE', reason: (err as Error).message };
    }
    let loaded;
    try {
      const soloIneligible = soloIneligibility(config, checked.size);
      loaded = await this.options.pool.load(v.key, checked.path, { ...entry.settings!, ...(sha256 === undefined ? {} : { sha256 }), ...(soloIneligible ? { soloIneligible } : {}) }, warmup);
    } catch (err) {
      const message = (err as Error).message;
      const file = path.join(String(version), MODEL_FILE);
      return { ...v, state: 'UNAVAILABLE', reason: message.startsWith('warm-up') ? `'${file}' loaded, but its ${message}` : `ONNX Runtime cannot load '${file}': ${message}` };
    }
    const inputs = checkSpecs('input', loaded.inputs, config.inputs);
    const outputs = checkSpecs('output', loaded.outputs, config.outputs);
    const problems = [...inputs.problems, ...outputs.problems];
    if (config.text_pipeline) problems.push(...checkTextPipeline(config.text_pipeline, inputs.specs, outputs.specs));
    problems.push(...batchingProblems(config, inputs.specs, outputs.specs));
    let decoder: DecoderLayout | undefined;
    if (entry.generation) {
      try {
        decoder = readDecoderLayout(inputs.specs, outputs.specs, entry.generation.hf);
      } catch (err) {
        problems.push((err as Error).message);
      }
    }
    if (problems.length > 0) {
      await this.options.pool.unload(v.key);
      return { ...v, state: 'UNAVAILABLE', reason: `model does not match ${entry.configFile}: ${problems.join('; ')}` };
    }
    const ready: ModelVersionEntry = { ...v, state: 'READY', inputs: inputs.specs, outputs: outputs.specs, ...(decoder ? { decoder } : {}) };
    this.emit('version-ready', ready, schedulePolicy(config, checked.size));
    return ready;
  }

  /**
   * Unloads a model on request. Its READY versions stop taking requests first (UNLOADING: resolve() refuses
   * them UNAVAILABLE) and the model leaves the list (so readiness no longer waits for it); the requests in
   * flight finish, and only then are the sessions released. A model that is not loaded is left as it is.
   */
  unloadModel(name: string): Promise<void> {
    checkModelName(name);
    return this.serially(name, async () => {
      const entry = this.models.get(name);
      if (!entry) return;
      const serving = entry.versions.filter((v) => v.state === 'READY');
      for (const v of serving) v.state = 'UNLOADING';
      this.models.delete(name);
      await this.retire(serving);
    });
  }

  /** How the repository waits for a version's requests in flight (the pipeline's drained()); set once by the server. */
  drainWith(drained: (key: string) => Promise<void>): void {
    this.drained = drained;
  }

  list(): ModelEntry[] {
    return [...this.models.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  get(name: string): ModelEntry | undefined {
    return this.models.get(name);
  }

  /** The version a request without one gets: the newest READY version. */
  defaultVersion(entry: ModelEntry): ModelVersionEntry | undefined {
    return entry.versions.find((v) => v.state === 'READY');
  }

  /** A model by name, or NOT_FOUND listing the models (UNAVAILABLE while the repository is still loading). */
  entry(model: string): ModelEntry {
    const entry = this.models.get(model);
    if (entry) return entry;
    if (this.loading) {
      throw unavailable(`model ${echo(model)} is not loaded yet: the model repository is still loading; retry when health reports SERVING`);
    }
    const names = this.list().map((m) => m.name);
    throw notFound(`model ${echo(model)} not found; available models: ${names.length ? names.join(', ') : '(none)'}`);
  }

  /** Resolves a request's model and version to a READY version, or throws NOT_FOUND / UNAVAILABLE. */
  resolve(model: string, version: string | undefined): { entry: ModelEntry; version: ModelVersionEntry } {
    const entry = this.entry(model);
    if (!version) {
      const v = this.defaultVersion(entry);
      if (!v) throw unavailable(`model '${model}' has no ready version: ${describeUnavailable(entry)}`);
      return { entry, version: v };
    }
    const v = entry.versions.find((x) => x.version === version);
    if (!v) {
      const served = entry.versions.map((x) => x.version);
      throw notFound(`version ${echo(version)} of model '${model}' not found; served versions: ${served.length ? served.join(', ') : '(none)'}`);
    }
    if (v.state !== 'READY') throw unavailable(`version ${version} of model '${model}' is ${v.state}: ${v.reason || 'not ready'}`);
    return { entry, version: v };
  }

  /** True once every model has been through loading (whatever the outcome). */
  readyVersionCount(): number {
    let n = 0;
    for (const m of this.models.values()) n += m.versions.filter((v) => v.state === 'READY').length;
    return n;
  }
}

function describeUnavailable(entry: ModelEntry): string {
  if (entry.reason) return entry.reason;
  return entry.versions.map((v) => `version ${v.version}: ${v.reason || v.state}`).join('; ') || 'no versions';
}
