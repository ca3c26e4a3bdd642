/**
 * The v2 protocol's model-control and reporting extensions, for the gRPC and REST front doors alike:
 * statistics, model configuration, and the repository's load/unload.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { Code, ServingError, echo, invalidArgument, notFound } from '../../core/errors';
import type { ModelRepository } from '../../repository/model-repository';
import type { ModelStatistics } from '../../telemetry/model-statistics';
import type { InferencePipeline } from '../../serving/inference-pipeline';
import type { RequestEnvelope } from '../envelope';
import type { Readiness } from '../readiness';
import { tritonConfigFromModel } from '../../repository/triton/triton-config';
import { checkModelName } from '../../repository/model-name';

/** What both v2 front doors (gRPC and REST) are built from: the shared pipeline and the server's views. */
export interface V2Parts {
  pipeline: InferencePipeline;
  repository: ModelRepository;
  readiness: Readiness;
  statistics: ModelStatistics;
  control: RepositoryControl;
  config: ModelConfigView;
  envelope: RequestEnvelope;
}

/** The ModelConfig extension: a model's configuration as Triton's ModelConfig message. */
export type ModelConfigView = (name: string, version: string) => unknown;

export interface RepositoryControl {
  /** Loads (or reloads) the model folder; refuses when no version of it could be made READY. */
  load(name: string): Promise<void>;
  /** Stops new requests for the model, waits for its queued and running ones, then releases its sessions. */
  unload(name: string): Promise<void>;
}

/** Triton's load/unload parameters (a config override, model files) are not supported: refused by name. */
export function refuseRepositoryParameters(parameters: Record<string, unknown> | null | undefined): void {
  const names = Object.keys(parameters ?? {});
  if (names.length > 0) {
    throw invalidArgument(
      `load/unload parameters are not supported (got ${names.slice(0, 5).map((n) => echo(n)).join(', ')}); tensorgate loads the model folder as it is on disk`,
    );
  }
}

/** Statistics of every READY version of every model (no name), of one model, or of one version of it. */
export function statisticsOf(repository: ModelRepository, statistics: ModelStatistics, name: string, version: string, visible?: (model: string) => boolean) {
  const ready = (model: string) => (repository.get(model)?.versions ?? []).filter((v) => v.state === 'READY').map((v) => ({ model, version: v.version }));
  if (!name) return statistics.snapshot(repository.list().filter((m) => !visible || visible(m.name)).flatMap((m) => ready(m.name)));
  if (!version) {
    repository.entry(name); // NOT_FOUND for an unknown model
    return statistics.snapshot(ready(name));
  }
  const resolved = repository.resolve(name, version);
  return statistics.snapshot([{ model: resolved.entry.name, version: resolved.version.version }]);
}

/** The ModelConfig of the asked version (or the one a request without a version gets), as it is served. */
export function modelConfigView(repository: ModelRepository, server: { workers: number; cacheEnabled: boolean }): ModelConfigView {
  return (name, version) => {
    const { entry, version: v } = repository.resolve(name, version || undefined);
    return tritonConfigFromModel({
      name: entry.name,
      config: entry.config!,
      inputs: v.inputs,
      outputs: v.outputs,
      defaultInstanceCount: server.workers,
      cacheEnabled: server.cacheEnabled,
    });
  };
}

/**
 * Load and unload through the repository, which switches a reload without downtime and drains an unloaded
 * version's requests before releasing it (ModelRepository.loadModel / unloadModel).
 */
export function repositoryControl(repository: ModelRepository, mode: 'none' | 'poll' | 'explicit'): RepositoryControl {
  /** As in Triton, only explicit model control takes load and unload requests: the others follow the folder. */
  const allowed = () => {
    if (mode === 'explicit') return;
    throw new ServingError(
      Code.FAILED_PRECONDITION,
      `model control mode is ${mode}: ${mode === 'poll' ? 'the server follows the repository folder (change the files to load, reload or unload)' : 'the models loaded at start stay loaded'}; ` +
        'start the server with --model-control-mode explicit to load and unload models on request',
    );
  };
  /** The model's folder in the repository, or NOT_FOUND; a name that is not a plain folder name is INVALID_ARGUMENT, before any file is touched. */
  const folder = async (name: string) => {
    checkModelName(name);
    const stat = await fs.stat(path.join(repository.root, name)).catch(() => undefined);
    if (!stat?.isDirectory()) throw notFound(`no model folder ${echo(name)} in the model repository`);
  };
  return {
    async load(name) {
      allowed();
      await folder(name);
      // A reload that fails keeps the previous load serving; the caller is told, as Triton tells it.
      const failures: string[] = [];
      const onFailure = (m: { name: string }, why: string) => void (m.name === name && failures.push(why));
      repository.on('reload-failed', onFailure);
      let entry;
      try {
        entry = await repository.loadModel(name);
      } finally {
        repository.off('reload-failed', onFailure);
      }
      if (failures.length > 0) {
        throw new ServingError(Code.FAILED_PRECONDITION, `the reload of model '${name}' failed (${failures.join('; ')}); its previous load keeps serving`);
      }
      if (!entry.versions.some((v) => v.state === 'READY')) {
        const why = entry.reason || entry.versions.map((v) => `version ${v.version}: ${v.reason}`).join('; ') || 'no versions';
        throw new ServingError(Code.FAILED_PRECONDITION, `model '${name}' was loaded but no version is READY: ${why}`);
      }
    },
    async unload(name) {
      allowed();
      checkModelName(name);
      // Unloading a model that is not loaded is done already (idempotent, for scripts and operators);
      // a name with no folder in the repository is NOT_FOUND.
      if (!repository.get(name)) return folder(name);
      await repository.unloadModel(name);
    },
  };
}
