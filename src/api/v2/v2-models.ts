/**
 * What the v2 protocol says about the server and its models (metadata, readiness, the repository index),
 * computed once here for the gRPC and REST front doors alike. Field names are the protocol's.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TensorSpec } from '../../core/tensor';
import { PACKAGE_ROOT } from '../../paths';
import type { ModelRepository } from '../../repository/model-repository';
import { modelFolders } from '../../repository/version-folders';
import type { Readiness } from '../readiness';
import { modelServiceName } from '../readiness';
import { v2Datatype } from './v2-tensors';

/** Triton's platform name for ONNX Runtime models: what v2 clients and dashboards expect. */
export const V2_PLATFORM = 'onnxruntime_onnx';

/**
 * The protocol extensions tensorgate implements (ServerMetadata `extensions`). Not listed: classification,
 * sequence, system_shared_memory, cuda_shared_memory, trace, logging.
 */
export const V2_EXTENSIONS = ['model_repository', 'model_configuration', 'schedule_policy', 'binary_tensor_data', 'parameters', 'statistics'];

let packageVersion: string | undefined;

export function serverMetadata() {
  packageVersion ??= (JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  return { name: 'tensorgate', version: packageVersion, extensions: V2_EXTENSIONS };
}

function tensorMetadata(s: TensorSpec) {
  return { name: s.name, datatype: v2Datatype(s.dtype), shape: s.shape };
}

/** ModelMetadata: of the asked version, or of the version a request without one gets; NOT_FOUND / UNAVAILABLE otherwise. */
export function modelMetadata(repository: ModelRepository, name: string, version: string) {
  const resolved = repository.resolve(name, version || undefined);
  return {
    name: resolved.entry.name,
    versions: resolved.entry.versions.filter((v) => v.state === 'READY').map((v) => v.version),
    platform: V2_PLATFORM,
    inputs: resolved.version.inputs.map(tensorMetadata),
    outputs: resolved.version.outputs.map(tensorMetadata),
  };
}

/**
 * ModelReady: the health service's entry for the model or version (READY, breaker not open, not draining).
 * An unknown model or version is not ready, rather than an error, so readiness probes get a plain answer.
 */
export function modelReady(readiness: Readiness, name: string, version: string): boolean {
  return readiness.isServing(modelServiceName(name, version || undefined));
}

export function serverReady(readiness: Readiness): boolean {
  return readiness.status === 'SERVING';
}

export interface ModelIndexEntry {
  name: string;
  version: string;
  state: string;
  reason: string;
}

/**
 * RepositoryIndex: every version of every model the server knows, plus model folders in the repository that
 * are not loaded (state UNAVAILABLE, reason "unloaded"), as Triton lists them. `readyOnly`: READY versions only.
 */
export async function repositoryIndex(repository: ModelRepository, readyOnly: boolean, visible?: (model: string) => boolean): Promise<ModelIndexEntry[]> {
  const index: ModelIndexEntry[] = [];
  const known = new Set<string>();
  for (const m of repository.list()) {
    known.add(m.name);
    if (m.versions.length === 0) index.push({ name: m.name, version: '', state: 'UNAVAILABLE', reason: m.reason });
    for (const v of m.versions) index.push({ name: m.name, version: v.version, state: v.state, reason: v.reason });
  }
  // A repository that cannot be read lists only what is loaded.
  for (const name of await modelFolders(repository.root).catch(() => [])) {
    if (!known.has(name)) index.push({ name, version: '', state: 'UNAVAILABLE', reason: 'unloaded' });
  }
  index.sort((a, b) => a.name.localeCompare(b.name) || Number(b.version) - Number(a.version));
  // With an access policy, a caller sees the models it may read (src/security/access-guard.ts visibleTo).
  return index.filter((e) => (!readyOnly || e.state === 'READY') && (!visible || visible(e.name)));
}
