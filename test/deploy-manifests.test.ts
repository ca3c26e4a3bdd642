/**
 * The Kubernetes and KServe manifests (deploy/k8s, deploy/kserve) checked without a cluster.
 *
 * 1. Schema: every core Kubernetes object is validated by kubernetes-models (the Kubernetes OpenAPI schemas,
 *    compiled to ajv validators: types, required fields, enums, quantity and int-or-string formats). Those
 *    schemas allow unknown fields, which the API server's strict field validation (kubectl's default) refuses,
 *    so every document is also type-checked, in memory, by the TypeScript compiler against kubernetes-models'
 *    interfaces: an object literal with a field its type lacks is an error (a misspelt `livenessprobe`).
 * 2. KServe: no package carries KServe's CRD schemas, so ClusterServingRuntime and InferenceService are
 *    type-checked against interfaces written here from KServe's API types (pkg/apis/serving v1alpha1
 *    ServingRuntimeSpec and v1beta1 InferenceServiceSpec, the source of its CRDs' OpenAPI schemas), with the core
 *    types inside them (Container, Volume, PodSpec fields) taken from kubernetes-models, and their containers
 *    and pod fields validated by the core schemas as in 1.
 * 3. Cross-references that break a deployment silently: ports, probes and Service targets against each other
 *    and against the server's own settings (read from the manifest's env and args with the server's own
 *    resolveServerConfig); the drain timing; env names the server knows; Docker link variables that would
 *    shadow a setting; the HPA's metric against the adapter rule and the server's metrics registry; the image's
 *    user, ports and paths against the Dockerfile; the kustomization's files and images.
 *
 * What this cannot show: that a cluster accepts and runs them (no cluster, kubelet or KServe controller here).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import ts from 'typescript';
import YAML from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Container } from 'kubernetes-models/v1/Container';
import { PodSpec } from 'kubernetes-models/v1/PodSpec';
import { Service } from 'kubernetes-models/v1/Service';
import { resolveServerConfig, SERVER_SETTINGS, type ServerConfig } from '../src/config/server-config';
import { PACKAGE_ROOT } from '../src/paths';
import { ServerMetrics } from '../src/telemetry/metrics';

const K8S_DIR = path.join(PACKAGE_ROOT, 'deploy', 'k8s');
const KSERVE_DIR = path.join(PACKAGE_ROOT, 'deploy', 'kserve');
/** Files in deploy/k8s that kustomization.yaml must not list (their reasons are in the files). */
const NOT_IN_KUSTOMIZATION = new Set(['kustomization.yaml', 'prometheus-adapter-rules.yaml']);
/**
 * Time a stop needs after the grace period: the server's flush before forceShutdown (1 s, server.ts), closing
 * the HTTP port and the inference workers, and the kubelet's own signalling. Generous on purpose.
 */
const DRAIN_MARGIN_S = 5;
/** The node:* images' `node` user (the Dockerfile's USER). */
const NODE_IMAGE_UID = 1000;

// ---------------------------------------------------------------------------------------------- loading

type Obj = Record<string, any>;

interface Doc {
  file: string;
  index: number;
  value: Obj;
}

function loadDocs(file: string): Doc[] {
  const text = fs.readFileSync(file, 'utf8');
  const docs = YAML.parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true });
  const out: Doc[] = [];
  docs.forEach((d, index) => {
    assert.deepEqual(d.errors.map(String), [], `${path.relative(PACKAGE_ROOT, file)} document ${index + 1} does not parse`);
    assert.deepEqual(d.warnings.map(String), [], `${path.relative(PACKAGE_ROOT, file)} document ${index + 1}`);
    const value = d.toJS() as Obj | null;
    if (value !== null) out.push({ file: path.relative(PACKAGE_ROOT, file), index, value });
  });
  return out;
}

const yamlFiles = (dir: string) => fs.readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();
const k8sDocs = yamlFiles(K8S_DIR).flatMap((f) => loadDocs(path.join(K8S_DIR, f)));
const kserveDocs = yamlFiles(KSERVE_DIR).flatMap((f) => loadDocs(path.join(KSERVE_DIR, f)));
const allDocs = [...k8sDocs, ...kserveDocs];
const label = (d: Doc) => `${d.file}: ${d.value.kind}/${d.value.metadata?.name ?? '?'}`;

function one(docs: Doc[], kind: string, name?: string): Obj {
  const found = docs.filter((d) => d.value.kind === kind && (name === undefined || d.value.metadata?.name === name));
  assert.equal(found.length, 1, `expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0].value;
}

const deployment = one(k8sDocs, 'Deployment');
const podSpec: Obj = deployment.spec.template.spec;
const serverContainer: Obj = podSpec.containers.find((c: Obj) => c.name === 'tensorgate');
const runtime = one(kserveDocs, 'ClusterServingRuntime');
const runtimeContainer: Obj = runtime.spec.containers.find((c: Obj) => c.name === 'kserve-container');
const isvc = one(kserveDocs, 'InferenceService');

// ---------------------------------------------------------------------------------------------- helpers

/** A Kubernetes quantity as a number (cores for cpu: "2", "1500m"; bytes for memory: "1Gi", "512M"). */
function quantity(q: string | number): number {
  if (typeof q === 'number') return q;
  const m = /^([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(q);
  assert.ok(m, `quantity ${q}`);
  const scale: Record<string, number> = { '': 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
  return Number(m[1]) * scale[m[2] ?? ''];
}

/**
 * The environment a container's process sees from its `env` (resourceFieldRef resolved as the kubelet does:
 * the resource divided by the divisor, rounded up), on top of the image's ENV.
 */
function containerEnv(container: Obj, imageEnv: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = { ...imageEnv };
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = String(e.value);
    else if (e.valueFrom?.resourceFieldRef) {
      const ref = e.valueFrom.resourceFieldRef;
      assert.equal(ref.containerName ?? container.name, container.name, `${e.name}: resourceFieldRef names another container`);
      const [section, resource] = String(ref.resource).split('.') as ['limits' | 'requests', string];
      const amount = container.resources?.[section]?.[resource];
      assert.ok(amount !== undefined, `${e.name}: resourceFieldRef ${ref.resource}, which the container does not set`);
      env[e.name] = String(Math.ceil(quantity(amount) / quantity(ref.divisor ?? '1')));
    } else assert.fail(`${e.name}: an env source this test does not resolve`);
  }
  return env;
}

/** `--flag value` / `--flag=value` pairs after the CLI command, as the CLI passes them to resolveServerConfig. */
function flagsOf(args: string[]): Record<string, string> {
  const flags: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    assert.ok(arg.startsWith('--'), `argument ${JSON.stringify(arg)} is not a flag`);
    const eq = arg.indexOf('=');
    if (eq > 0) flags[arg.slice(2, eq)] = arg.slice(eq + 1);
    else flags[arg.slice(2)] = args[++i];
  }
  return flags;
}

const probeSeconds = (p: Obj) => (p.periodSeconds ?? 10) * (p.failureThreshold ?? 3);
const preStopSleep = (container: Obj): number => {
  const handler = container.lifecycle?.preStop;
  if (handler?.sleep) return handler.sleep.seconds;
  const cmd: string[] = handler?.exec?.command ?? [];
  assert.equal(cmd[0], 'sleep', `${container.name}: preStop is not a sleep: ${JSON.stringify(handler)}`);
  return Number(cmd[1]);
};

/** A probe's or Service's port (number or container port name) as the container port number it reaches. */
function resolvePort(container: Obj, port: number | string): number {
  if (typeof port === 'number') return port;
  const found = (container.ports ?? []).find((p: Obj) => p.name === port);
  assert.ok(found, `container ${container.name} has no port named ${port}`);
  return found.containerPort;
}

// ---------------------------------------------------------------------------------------------- the Dockerfile

interface Image {
  workdir: string;
  user: string;
  exposed: number[];
  env: Record<string, string>;
  copied: string[];
  entrypoint: string[];
  cmd: string[];
}

/** The runtime (last) stage of the Dockerfile: what a container of the image starts with. */
function runtimeImage(): Image {
  const text = fs.readFileSync(path.join(PACKAGE_ROOT, 'Dockerfile'), 'utf8').replace(/\\\r?\n/g, ' ');
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const lastFrom = lines.map((l) => /^FROM\s/i.test(l)).lastIndexOf(true);
  const image: Image = { workdir: '/', user: 'root', exposed: [], env: {}, copied: [], entrypoint: [], cmd: [] };
  for (const line of lines.slice(lastFrom)) {
    const [, keyword, rest] = /^(\S+)\s+(.*)$/.exec(line)!;
    const args = rest.trim();
    switch (keyword.toUpperCase()) {
      case 'WORKDIR': image.workdir = path.posix.resolve(image.workdir, args); break;
      case 'USER': image.user = args; break;
      case 'EXPOSE': image.exposed.push(...args.split(/\s+/).map((p) => Number(p.split('/')[0]))); break;
      case 'ENV': for (const m of args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) image.env[m[1]] = m[2].replace(/^"|"$/g, ''); break;
      case 'COPY': {
        const parts = args.split(/\s+/).filter((p) => !p.startsWith('--'));
        image.copied.push(path.posix.resolve(image.workdir, parts[parts.length - 1]));
        break;
      }
      case 'ENTRYPOINT': image.entrypoint = JSON.parse(args); break;
      case 'CMD': image.cmd = JSON.parse(args); break;
    }
  }
  return image;
}

const image = runtimeImage();
const settingsByEnv = new Map(SERVER_SETTINGS.map((s) => [s.env, s]));
const settingsByFlag = new Map(SERVER_SETTINGS.map((s) => [s.flag, s]));

/** The server settings a container would run with, and the checks that its env and args only use known ones. */
function serverConfigOf(container: Obj, extraArgs: string[] = []): { config: ServerConfig; env: Record<string, string> } {
  for (const e of container.env ?? []) {
    assert.ok(settingsByEnv.has(e.name), `${container.name}: env ${e.name} is not a tensorgate setting (src/config/server-config.ts)`);
  }
  const env = containerEnv(container, image.env);
  // args replace the image's CMD; the first is the CLI command.
  const args: string[] = container.args ?? image.cmd;
  assert.equal(args[0], 'serve', `${container.name}: the container must run \`serve\` (args ${JSON.stringify(args)})`);
  assert.equal(container.command, undefined, `${container.name}: command would replace the image's ENTRYPOINT`);
  const flags = flagsOf([...args.slice(1), ...extraArgs]);
  for (const f of Object.keys(flags)) assert.ok(settingsByFlag.has(f), `${container.name}: --${f} is not a tensorgate flag`);
  return { config: resolveServerConfig(flags, env), env };
}

// ---------------------------------------------------------------------------------------------- 1. schemas

const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  'apps/v1 Deployment': Deployment,
  'v1 Service': Service,
  'v1 ConfigMap': ConfigMap,
  'policy/v1 PodDisruptionBudget': PodDisruptionBudget,
  'autoscaling/v2 HorizontalPodAutoscaler': HorizontalPodAutoscaler,
};

test('every core Kubernetes object validates against the Kubernetes OpenAPI schema (kubernetes-models)', () => {
  const core = allDocs.filter((d) => !String(d.value.apiVersion).includes('kserve.io') && d.value.kind !== 'Kustomization');
  assert.ok(core.length >= 6, `found ${core.length} core objects`);
  for (const d of core) {
    const Model = MODELS[`${d.value.apiVersion} ${d.value.kind}`];
    assert.ok(Model, `${label(d)}: no schema here for ${d.value.apiVersion} ${d.value.kind}`);
    assert.doesNotThrow(() => new Model(d.value).validate(), `${label(d)}`);
  }
});

test('the KServe runtime container and the InferenceService pod fields validate against the core schemas', () => {
  for (const c of runtime.spec.containers) assert.doesNotThrow(() => new Container(c).validate(), `runtime container ${c.name}`);
  // The predictor is a PodSpec inline plus the model's Container inline (pkg/apis/serving/v1beta1/predictor.go).
  const { model, minReplicas, maxReplicas, scaleMetric, scaleTarget, ...podFields } = isvc.spec.predictor;
  void minReplicas; void maxReplicas; void scaleMetric; void scaleTarget;
  const { modelFormat, runtime: runtimeName, protocolVersion, storageUri, ...containerFields } = model;
  void modelFormat; void runtimeName; void protocolVersion; void storageUri;
  const asPod = { ...podFields, containers: [{ name: 'kserve-container', ...containerFields }] };
  assert.doesNotThrow(() => new PodSpec(asPod).validate(), 'InferenceService predictor as a PodSpec');
});

test('the schema validator is strict about types (a self-check of the validator, on a broken copy)', () => {
  const broken = structuredClone(deployment);
  broken.spec.template.spec.containers[0].readinessProbe.grpc.port = 'grpc'; // GRPCAction.port takes a number only
  assert.throws(() => new Deployment(broken).validate(), /readinessProbe\/grpc\/port must be integer/);
  const badQuantity = structuredClone(deployment);
  badQuantity.spec.template.spec.containers[0].resources.limits.cpu = '2 cores';
  assert.throws(() => new Deployment(badQuantity).validate(), /limits\/cpu/);
});

/**
 * KServe's API as TypeScript, written from its Go types (serving.kserve.io v1alpha1 ServingRuntimeSpec,
 * v1beta1 InferenceServiceSpec/PredictorSpec/ModelSpec/ComponentExtensionSpec); embedded Kubernetes types
 * come from kubernetes-models. Fields this project does not use are typed loosely (`unknown`) but named, so a
 * misspelt field is still an error.
 */
const KSERVE_TYPES = `
type Protocol = 'v1' | 'v2' | 'grpc-v1' | 'grpc-v2';
interface SupportedModelFormat { name: string; version?: string; autoSelect?: boolean; priority?: number }
interface ServingRuntimePodSpec {
  containers: IContainer[]; volumes?: IVolume[]; nodeSelector?: Record<string, string>; affinity?: IAffinity;
  tolerations?: IToleration[]; labels?: Record<string, string>; annotations?: Record<string, string>;
  imagePullSecrets?: ILocalObjectReference[]; hostIPC?: boolean; schedulerName?: string; resourceClaims?: unknown[];
}
interface ServingRuntimeSpec extends ServingRuntimePodSpec {
  supportedModelFormats?: SupportedModelFormat[]; multiModel?: boolean; disabled?: boolean; protocolVersions?: Protocol[];
  workerSpec?: unknown; grpcEndpoint?: string; grpcDataEndpoint?: string; httpDataEndpoint?: string; replicas?: number;
  storageHelper?: { disabled?: boolean }; builtInAdapter?: unknown;
}
interface ClusterServingRuntime {
  apiVersion: 'serving.kserve.io/v1alpha1'; kind: 'ClusterServingRuntime'; metadata: IObjectMeta; spec: ServingRuntimeSpec;
}
interface ComponentExtensionSpec {
  minReplicas?: number; maxReplicas?: number; scaleTarget?: number; scaleMetric?: 'cpu' | 'memory' | 'concurrency' | 'rps';
  scaleMetricType?: 'Utilization' | 'AverageValue' | 'Value'; autoScaling?: unknown; containerConcurrency?: number;
  timeout?: number; canaryTrafficPercent?: number; logger?: unknown; batcher?: unknown; labels?: Record<string, string>;
  annotations?: Record<string, string>; deploymentStrategy?: IDeploymentStrategy;
}
type PredictorExtensionSpec = Partial<IContainer> & {
  storageUri?: string; runtimeVersion?: string; protocolVersion?: Protocol; storage?: unknown; confidential?: unknown;
};
type ModelSpec = PredictorExtensionSpec & { modelFormat: { name: string; version?: string }; runtime?: string };
type PredictorSpec = Partial<IPodSpec> & ComponentExtensionSpec & {
  name?: string; model?: ModelSpec; storageUris?: { uri: string; mountPath: string }[]; storageContainerName?: string;
  workerSpec?: unknown; sklearn?: unknown; xgboost?: unknown; tensorflow?: unknown; pytorch?: unknown; triton?: unknown;
  onnx?: unknown; huggingface?: unknown; pmml?: unknown; lightgbm?: unknown; paddle?: unknown;
};
interface InferenceService {
  apiVersion: 'serving.kserve.io/v1beta1'; kind: 'InferenceService'; metadata: IObjectMeta;
  spec: { predictor: PredictorSpec; explainer?: unknown; transformer?: unknown; canary?: unknown[] };
}
interface Kustomization {
  apiVersion: 'kustomize.config.k8s.io/v1beta1'; kind: 'Kustomization'; resources?: string[]; namespace?: string;
  images?: { name: string; newName?: string; newTag?: string; digest?: string }[];
}
`;

const TS_IMPORTS = `
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IDeploymentStrategy } from 'kubernetes-models/apps/v1/DeploymentStrategy';
import type { IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IService } from 'kubernetes-models/v1/Service';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import type { IAffinity } from 'kubernetes-models/v1/Affinity';
import type { IToleration } from 'kubernetes-models/v1/Toleration';
import type { ILocalObjectReference } from 'kubernetes-models/v1/LocalObjectReference';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IObjectMeta } from '@kubernetes-models/apimachinery/apis/meta/v1/ObjectMeta';
`;

const TS_TYPE_OF: Record<string, string> = {
  Deployment: 'IDeployment',
  Service: 'IService',
  ConfigMap: 'IConfigMap',
  PodDisruptionBudget: 'IPodDisruptionBudget',
  HorizontalPodAutoscaler: 'IHorizontalPodAutoscaler',
  ClusterServingRuntime: 'ClusterServingRuntime',
  InferenceService: 'InferenceService',
  Kustomization: 'Kustomization',
};

/** Type-checks documents in memory; returns one line per error, naming the document and the field's line. */
function typeCheck(docs: Doc[]): string[] {
  const file = path.join(PACKAGE_ROOT, '__deploy_manifests__.ts');
  const blocks: { doc: Doc; start: number; lines: string[] }[] = [];
  let source = `${TS_IMPORTS}\n${KSERVE_TYPES}\n`;
  docs.forEach((doc, i) => {
    const type = TS_TYPE_OF[doc.value.kind];
    assert.ok(type, `${label(doc)}: no type for kind ${doc.value.kind}`);
    const literal = JSON.stringify(doc.value, null, 2);
    const header = `export const doc${i}: ${type} = `;
    blocks.push({ doc, start: source.split('\n').length - 1, lines: (header + literal).split('\n') });
    source += `${header}${literal};\n`;
  });
  const options: ts.CompilerOptions = {
    strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.Node16,
    moduleResolution: ts.ModuleResolutionKind.Node16, types: [], skipLibCheck: true, lib: ['lib.es2022.d.ts'],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, ...rest) =>
    path.resolve(name) === file ? ts.createSourceFile(name, source, lang) : getSourceFile(name, lang, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => path.resolve(name) === file || fileExists(name);
  const program = ts.createProgram([file], options, host);
  const sf = program.getSourceFile(file)!;
  const diagnostics = [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)];
  return diagnostics.map((d) => {
    const line = d.start === undefined ? -1 : sf.getLineAndCharacterOfPosition(d.start).line;
    const block = blocks.find((b) => line >= b.start && line < b.start + b.lines.length);
    const where = block ? `${label(block.doc)}, near ${block.lines[line - block.start].trim()}` : `line ${line + 1}`;
    return `${where}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  });
}

test('no unknown or mistyped field in any manifest: type-checked against the Kubernetes and KServe types', () => {
  assert.deepEqual(typeCheck(allDocs), []);
});

test('the type check finds a misspelt field (a self-check, on a broken copy)', () => {
  const broken = structuredClone(deployment);
  broken.spec.template.spec.containers[0].livenessprobe = broken.spec.template.spec.containers[0].livenessProbe;
  const brokenRuntime = structuredClone(runtime);
  brokenRuntime.spec.protocolVersion = ['v2'];
  const errors = typeCheck([
    { file: 'broken', index: 0, value: broken },
    { file: 'broken', index: 1, value: brokenRuntime },
  ]);
  assert.equal(errors.length, 2, errors.join('\n'));
  assert.match(errors[0], /'"?livenessprobe"?' does not exist/);
  assert.match(errors[1], /'"?protocolVersion"?' does not exist/);
});

// ---------------------------------------------------------------------------------------------- 3. cross-references

test('kustomization.yaml lists every manifest of deploy/k8s (but the adapter rules), and its image is the one the Deployment uses', () => {
  const kustomization = one(k8sDocs, 'Kustomization');
  const listed = new Set<string>(kustomization.resources);
  const files = yamlFiles(K8S_DIR).filter((f) => !NOT_IN_KUSTOMIZATION.has(f));
  assert.deepEqual([...listed].sort(), files);
  assert.ok(!listed.has('prometheus-adapter-rules.yaml'));
  const names = new Set<string>(kustomization.images.map((i: Obj) => i.name));
  for (const c of [...podSpec.initContainers, ...podSpec.containers]) {
    assert.ok(names.has(c.image), `${c.name}: image ${c.image} is not rewritten by the kustomization's images`);
  }
});

test('Deployment: ports, probes and env agree with the server settings they produce', () => {
  const { config, env } = serverConfigOf(serverContainer);
  const ports = new Map<string, number>(serverContainer.ports.map((p: Obj) => [p.name, p.containerPort]));
  assert.equal(ports.get('grpc'), config.port, 'the grpc container port is the server gRPC port');
  assert.equal(ports.get('http'), config.httpPort, 'the http container port is the server HTTP port');
  assert.equal(config.host, '0.0.0.0', 'the server must listen on every interface for probes and Services');
  // Probes.
  const { startupProbe, readinessProbe, livenessProbe } = serverContainer;
  for (const [name, probe] of [['startup', startupProbe], ['readiness', readinessProbe]] as const) {
    assert.equal(probe.grpc?.port, config.port, `${name} probe: gRPC health on the server's gRPC port`);
    assert.equal(probe.grpc.service, '', `${name} probe: the whole server's entry "" (strict readiness)`);
  }
  assert.equal(config.strictReadiness, true);
  // Liveness must not fail while models load or are broken, nor while draining: every gRPC health
  // entry is NOT_SERVING then (README "Server settings"), so liveness is /healthz, which never depends on models.
  assert.equal(livenessProbe.grpc, undefined, 'liveness on gRPC health would restart pods whose models load or are broken');
  assert.equal(livenessProbe.httpGet.path, '/healthz');
  assert.equal(resolvePort(serverContainer, livenessProbe.httpGet.port), config.httpPort);
  assert.match(fs.readFileSync(path.join(PACKAGE_ROOT, 'src', 'api', 'http', 'http-server.ts'), 'utf8'), /GET \/healthz\s+liveness/);
  assert.ok(probeSeconds(startupProbe) >= 300, `the startup probe allows ${probeSeconds(startupProbe)} s to load models`);
  // Workers x intra-op threads = the CPU limit.
  const cpuLimit = quantity(serverContainer.resources.limits.cpu);
  assert.ok(Number.isInteger(cpuLimit), `a whole CPU limit (resourceFieldRef rounds ${cpuLimit} up)`);
  assert.equal(config.workers * config.intraOpThreads, cpuLimit, `workers ${config.workers} x threads ${config.intraOpThreads}`);
  assert.equal(env.TENSORGATE_WORKERS, String(cpuLimit));
  assert.ok(serverContainer.resources.requests.cpu, 'the HPA CPU utilisation is a share of the CPU request');
});

test('Deployment: the drain fits in the termination grace period, and a rollout never lowers capacity', () => {
  const { config } = serverConfigOf(serverContainer);
  const needed = preStopSleep(serverContainer) + config.shutdownGraceMs / 1000 + DRAIN_MARGIN_S;
  assert.ok(preStopSleep(serverContainer) >= 5, 'preStop gives the endpoints time to drop the pod before SIGTERM');
  assert.ok(podSpec.terminationGracePeriodSeconds >= needed, `terminationGracePeriodSeconds ${podSpec.terminationGracePeriodSeconds} < preStop + grace + margin = ${needed}`);
  assert.equal(deployment.spec.strategy.rollingUpdate.maxUnavailable, 0);
  assert.equal(deployment.spec.replicas, undefined, 'the HPA owns replicas');
});

test('Deployment: the image user, ports and paths match the Dockerfile', () => {
  assert.equal(image.user, 'node');
  assert.equal(podSpec.securityContext.runAsUser, NODE_IMAGE_UID);
  for (const p of serverContainer.ports) assert.ok(image.exposed.includes(p.containerPort), `port ${p.containerPort} is not EXPOSEd`);
  assert.deepEqual(image.entrypoint, ['node', 'dist/src/cli/main.js']);
  // The init container copies the models the image bundles.
  const init = podSpec.initContainers.find((c: Obj) => c.name === 'models');
  const [cp, flag, from, to] = init.command;
  assert.deepEqual([cp, flag], ['cp', '-R']);
  assert.ok(image.copied.includes(path.posix.dirname(from)), `${from}: the image has no ${path.posix.dirname(from)} (COPY targets: ${image.copied.join(', ')})`);
  const mountOf = (c: Obj, volume: string) => c.volumeMounts.find((m: Obj) => m.name === volume);
  assert.equal(path.posix.normalize(to).replace(/\/$/, ''), mountOf(init, 'models').mountPath);
  // The server reads the repository from the same volume.
  const { config } = serverConfigOf(serverContainer);
  assert.equal(config.modelRepository, mountOf(serverContainer, 'models').mountPath);
  assert.ok(podSpec.volumes.some((v: Obj) => v.name === 'models'));
});

/** Docker link variables the kubelet adds for a Service (when enableServiceLinks is not false). */
function serviceLinkVariables(service: Obj): string[] {
  const prefix = String(service.metadata.name).toUpperCase().replace(/-/g, '_');
  const vars = [`${prefix}_SERVICE_HOST`, `${prefix}_SERVICE_PORT`, `${prefix}_PORT`];
  for (const p of service.spec.ports) {
    const proto = p.protocol ?? 'TCP';
    const base = `${prefix}_PORT_${p.port}_${proto}`;
    vars.push(base, `${base}_PROTO`, `${base}_PORT`, `${base}_ADDR`);
    if (p.name) vars.push(`${prefix}_SERVICE_PORT_${String(p.name).toUpperCase().replace(/-/g, '_')}`);
  }
  return vars;
}

test('no Service link variable shadows a server setting', () => {
  const services = k8sDocs.filter((d) => d.value.kind === 'Service').map((d) => d.value);
  const shadowed = (links: boolean) =>
    links ? services.flatMap(serviceLinkVariables).filter((v) => settingsByEnv.has(v) && !serverContainer.env.some((e: Obj) => e.name === v)) : [];
  assert.deepEqual(shadowed(podSpec.enableServiceLinks !== false), []);
  // Why it matters: with links on, the Service "tensorgate" sets TENSORGATE_PORT=tcp://<ip>:50051.
  assert.ok(services.flatMap(serviceLinkVariables).includes('TENSORGATE_PORT'));
  // The gRPC port is also set explicitly (explicit env wins over link variables), for KServe, whose pods
  // cannot turn links off.
  assert.ok(serverContainer.env.some((e: Obj) => e.name === 'TENSORGATE_PORT'));
  assert.ok(runtimeContainer.env.some((e: Obj) => e.name === 'TENSORGATE_PORT'));
});

test('Services, PodDisruptionBudget and HPA select and target the Deployment', () => {
  const podLabels: Obj = deployment.spec.template.metadata.labels;
  const matches = (selector: Obj) => Object.entries(selector).every(([k, v]) => podLabels[k] === v);
  assert.ok(matches(deployment.spec.selector.matchLabels));
  const { config } = serverConfigOf(serverContainer);
  for (const svc of k8sDocs.filter((d) => d.value.kind === 'Service').map((d) => d.value)) {
    assert.ok(matches(svc.spec.selector), `Service ${svc.metadata.name} selects the pods`);
    for (const p of svc.spec.ports) {
      const target = resolvePort(serverContainer, p.targetPort ?? p.port);
      if (p.name === 'grpc') {
        assert.equal(target, config.port, `Service ${svc.metadata.name} grpc reaches the gRPC port`);
        assert.equal(p.appProtocol, 'grpc');
      } else {
        assert.equal(p.name, 'http');
        assert.equal(target, config.httpPort);
        assert.equal(p.appProtocol, 'http');
      }
    }
  }
  const pdb = one(k8sDocs, 'PodDisruptionBudget');
  assert.ok(matches(pdb.spec.selector.matchLabels));
  const hpa = one(k8sDocs, 'HorizontalPodAutoscaler');
  assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: deployment.apiVersion, kind: 'Deployment', name: deployment.metadata.name });
  assert.ok(hpa.spec.minReplicas >= 2, 'at least two replicas, so one can drain while the other serves');
  assert.equal(typeof pdb.spec.maxUnavailable, 'number');
  assert.ok(pdb.spec.maxUnavailable < hpa.spec.minReplicas);
});

test('the HPA custom metric is served by the adapter rule and exists in the server metrics registry', async () => {
  const hpa = one(k8sDocs, 'HorizontalPodAutoscaler');
  const podMetrics: string[] = hpa.spec.metrics.filter((m: Obj) => m.type === 'Pods').map((m: Obj) => m.pods.metric.name);
  assert.ok(hpa.spec.metrics.some((m: Obj) => m.type === 'Resource' && m.resource.name === 'cpu'));
  assert.equal(podMetrics.length, 1);
  const adapterConfig = YAML.parse(one(k8sDocs, 'ConfigMap', 'adapter-config').data['config.yaml']) as { rules: Obj[] };
  const registry = new ServerMetrics().registry;
  const known = new Set(registry.getMetricsAsArray().map((m) => m.name));
  const served = new Map<string, string>();
  for (const rule of adapterConfig.rules) {
    assert.deepEqual(Object.keys(rule).sort(), ['metricsQuery', 'name', 'resources', 'seriesQuery']);
    const series = /^(\w+)\{/.exec(rule.seriesQuery)?.[1];
    assert.ok(series && known.has(series), `adapter seriesQuery names ${series}, which the server does not export`);
    const type = (await registry.getSingleMetric(series)!.get()).type;
    assert.equal(type, 'gauge', `${series}: a per-pod average only makes sense of a gauge`);
    assert.match(rule.seriesQuery, /namespace!="",pod!=""/);
    assert.deepEqual(rule.resources.overrides, { namespace: { resource: 'namespace' }, pod: { resource: 'pod' } });
    assert.ok(new RegExp(rule.name.matches).test(series));
    assert.match(rule.metricsQuery, /<<\.Series>>\{<<\.LabelMatchers>>\}/);
    assert.match(rule.metricsQuery, /by \(<<\.GroupBy>>\)/);
    served.set(series.replace(new RegExp(rule.name.matches), rule.name.as), series);
  }
  for (const name of podMetrics) assert.ok(served.has(name), `HPA metric ${name} is not served by any adapter rule`);
  assert.ok(served.has('tensorgate_inflight_requests'));
});

test('KServe: the runtime maps /mnt/models and its ports the way KServe expects, and the InferenceService uses it', () => {
  const { config } = serverConfigOf(runtimeContainer);
  assert.equal(config.modelRepository, '/mnt/models', 'KServe mounts storageUri at /mnt/models');
  assert.ok(runtime.spec.protocolVersions.includes('v2') && runtime.spec.protocolVersions.includes('grpc-v2'));
  assert.ok(runtime.spec.supportedModelFormats.some((f: Obj) => f.name === 'onnx'));
  assert.equal(runtime.spec.containers[0].name, 'kserve-container', 'KServe merges the InferenceService model into kserve-container');
  // KServe's Service: port 80 -> the first container port (HTTP); a port named *h2c*/*grpc* is gRPC.
  const [first, ...rest] = runtimeContainer.ports;
  assert.equal(first.containerPort, config.httpPort);
  const grpcPort = rest.find((p: Obj) => /h2c/.test(p.name));
  assert.equal(grpcPort?.containerPort, config.port);
  assert.equal(runtimeContainer.readinessProbe.grpc.port, config.port);
  assert.equal(runtimeContainer.startupProbe.grpc.port, config.port);
  assert.equal(resolvePort(runtimeContainer, runtimeContainer.livenessProbe.httpGet.port), config.httpPort);
  assert.equal(runtimeContainer.livenessProbe.httpGet.path, '/healthz');
  assert.equal(runtimeContainer.securityContext.runAsUser, NODE_IMAGE_UID);
  assert.equal(config.workers * config.intraOpThreads, quantity(runtimeContainer.resources.limits.cpu));
  // The InferenceService.
  const model = isvc.spec.predictor.model;
  assert.equal(model.runtime, runtime.metadata.name);
  assert.ok(runtime.spec.supportedModelFormats.some((f: Obj) => f.name === model.modelFormat.name));
  assert.ok(runtime.spec.protocolVersions.includes(model.protocolVersion));
  assert.match(model.storageUri, /^(s3|gs|pvc|https?|hdfs|webhdfs|oci):\/\//);
  const needed = preStopSleep(runtimeContainer) + config.shutdownGraceMs / 1000 + DRAIN_MARGIN_S;
  assert.ok(isvc.spec.predictor.terminationGracePeriodSeconds >= needed, `InferenceService terminationGracePeriodSeconds < ${needed}`);
});

test('the Deployment and the KServe runtime run the server the same way', () => {
  const k8s = serverConfigOf(serverContainer).config;
  const kserve = serverConfigOf(runtimeContainer).config;
  const { modelRepository: _a, ...k8sRest } = k8s;
  const { modelRepository: _b, ...kserveRest } = kserve;
  void _a; void _b;
  assert.deepEqual(kserveRest, k8sRest);
  for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe', 'lifecycle', 'resources'] as const) {
    const normalise = (c: Obj) => JSON.parse(JSON.stringify(c[probe]).replace(/"port":"http"/g, `"port":${k8s.httpPort}`));
    assert.deepEqual(normalise(runtimeContainer), normalise(serverContainer), probe);
  }
});
