/**
 * One load-generator thread: its own grpc-js channel (a worker thread has its own module instances, so
 * its own subchannel pool and TCP connection) and `concurrency` closed-loop callers, each sending its
 * next request the moment the previous one answers.
 *
 * The phase lives in shared memory so that every thread switches warm-up -> measure -> stop at the same
 * instant without a message hop: 0 warm-up (nothing recorded), 1 measure (record completions), 2 stop
 * (no new requests; report once the outstanding ones have answered).
 */
import * as grpc from '@grpc/grpc-js';
import { parentPort, workerData } from 'node:worker_threads';
import { createModelClient } from '../src/client/model-client';
import { createInferenceClient } from '../src/client/inference-client';
import { modelInferRequest, predictRequest, type BenchModel } from './workload';

export interface LoadWorkerData {
  address: string;
  model: BenchModel;
  concurrency: number;
  phase: SharedArrayBuffer;
  /** The RPC to load: ModelService Predict (default) or the v2 protocol's ModelInfer with raw contents. */
  rpc?: 'Predict' | 'ModelInfer';
}

export interface LoadWorkerReport {
  ok: number;
  /** gRPC status name -> count, for calls that completed while measuring. */
  errors: Record<string, number>;
  /** Per-request latency in ms of calls that completed OK while measuring. */
  latencies: Float64Array;
}

const { address, model, concurrency, phase, rpc = 'Predict' } = workerData as LoadWorkerData;
const flag = new Int32Array(phase);
const channelOptions = { 'grpc.use_local_subchannel_pool': 1 };
// BENCH_TOKEN: sent as `authorization: Bearer` on every call, for a server with an access policy (--auth-config).
const security = process.env.BENCH_TOKEN ? { token: process.env.BENCH_TOKEN } : {};
const client = rpc === 'ModelInfer' ? createInferenceClient(address, false, channelOptions, security) : createModelClient(address, channelOptions, { security });
const request = rpc === 'ModelInfer' ? modelInferRequest(model) : predictRequest(model);
const predict = client[rpc] as (req: object, cb: (err: grpc.ServiceError | null) => void) => void;

let latencies = new Float64Array(1 << 14);
let ok = 0;
const errors: Record<string, number> = {};
let outstanding = 0;
let onDrained: (() => void) | undefined;

function record(ms: number): void {
  if (ok === latencies.length) {
    const grown = new Float64Array(latencies.length * 2);
    grown.set(latencies);
    latencies = grown;
  }
  latencies[ok++] = ms;
}

function fire(): void {
  outstanding++;
  const started = performance.now();
  predict.call(client, request, (err) => {
    outstanding--;
    const p = Atomics.load(flag, 0);
    if (p === 1) {
      if (err) {
        const name = grpc.status[err.code] ?? String(err.code);
        errors[name] = (errors[name] ?? 0) + 1;
      } else {
        record(performance.now() - started);
      }
    }
    if (p < 2) fire();
    else if (outstanding === 0) onDrained?.();
  });
}

parentPort!.on('message', (m: { type: 'start' | 'collect' }) => {
  if (m.type === 'start') {
    for (let i = 0; i < concurrency; i++) fire();
    return;
  }
  const report = () => {
    client.close();
    const out = latencies.slice(0, ok);
    const message: LoadWorkerReport = { ok, errors, latencies: out };
    parentPort!.postMessage(message, [out.buffer]);
  };
  if (outstanding === 0) report();
  else onDrained = report;
});
