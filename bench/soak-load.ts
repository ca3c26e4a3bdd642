/**
 * Child-process entry: the soak's load, in its own process so that generating it does not distort the
 * server's (or the sampler's) numbers more than sharing the machine must. Closed loop: `concurrency`
 * callers on one channel, each sending its next request the moment the previous one answers, spread over
 * the mix below. Every request carries fresh random input, so (almost) every request is a cache miss and
 * a new cache entry: the worst case for the cache's memory.
 *
 * Protocol (IPC): parent sends {type:'start', address, concurrency}; {type:'stats'} is answered with the
 * counts since the previous 'stats'; {type:'stop'} drains and exits.
 */
import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createModelClient } from '../src/client/model-client';
import { BUNDLED_MODELS_DIR } from '../src/paths';
import { SOAK_MIX, type SoakKind, type SoakLoadCounts } from './soak-report';
import { TENSOR_INPUTS, rowElements } from './workload';

interface Start {
  type: 'start';
  address: string;
  concurrency: number;
}

const KINDS = Object.keys(SOAK_MIX) as SoakKind[];
const zero = () => Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<SoakKind, number>;
let counts: SoakLoadCounts = { ok: zero(), errors: {}, latencyMsSum: zero() };
let stopping = false;
let outstanding = 0;

const words = Object.keys(JSON.parse(fs.readFileSync(path.join(BUNDLED_MODELS_DIR, 'sentiment', 'vocab.json'), 'utf8')) as Record<string, number>);
const vocabSize = words.length;
const randomInt = (n: number) => Math.floor(Math.random() * n);

function randomFloats(n: number): Buffer {
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) values[i] = Math.random() * 2 - 1;
  return Buffer.from(values.buffer);
}

/** A PredictRequest (proto-loader object form) with fresh random input. */
function request(kind: SoakKind): object {
  switch (kind) {
    case 'mlp':
    case 'convnet': {
      const { name, dims } = TENSOR_INPUTS[kind];
      return { model: kind, inputs: [{ name, dtype: 'FP32', shape: [1, ...dims], data: randomFloats(rowElements(kind)), string_data: [] }] };
    }
    case 'sentiment-tokens': {
      const ids = new BigInt64Array(4 + randomInt(13));
      for (let i = 0; i < ids.length; i++) ids[i] = BigInt(randomInt(vocabSize));
      return { model: 'sentiment', inputs: [{ name: 'token_ids', dtype: 'INT64', shape: [1, ids.length], data: Buffer.from(ids.buffer), string_data: [] }] };
    }
    case 'sentiment-text': {
      const n = 5 + randomInt(12);
      const text = Array.from({ length: n }, () => words[randomInt(vocabSize)]).join(' ');
      return { model: 'sentiment', input_text: text };
    }
  }
}

function start(m: Start): void {
  const client = createModelClient(m.address);
  const predict = client.Predict as (req: object, cb: (err: grpc.ServiceError | null) => void) => void;
  const fire = (kind: SoakKind) => {
    if (stopping) {
      if (outstanding === 0) finish(client);
      return;
    }
    outstanding++;
    const started = performance.now();
    predict.call(client, request(kind), (err) => {
      outstanding--;
      if (err) {
        const name = grpc.status[err.code] ?? String(err.code);
        counts.errors[name] = (counts.errors[name] ?? 0) + 1;
      } else {
        counts.ok[kind]++;
        counts.latencyMsSum[kind] += performance.now() - started;
      }
      fire(kind);
    });
  };
  for (const kind of KINDS) {
    const callers = Math.max(1, Math.round(m.concurrency * SOAK_MIX[kind]));
    for (let i = 0; i < callers; i++) fire(kind);
  }
}

function finish(client: grpc.Client): void {
  client.close();
  process.send!({ type: 'stopped' }, () => process.exit(0));
}

process.on('message', (m: Start | { type: 'stats' | 'stop' }) => {
  if (m.type === 'start') start(m);
  else if (m.type === 'stats') {
    process.send!({ type: 'stats', counts });
    counts = { ok: zero(), errors: {}, latencyMsSum: zero() };
  } else if (m.type === 'stop') {
    stopping = true;
    // Nothing in flight (never started, or already drained): leave now.
    if (outstanding === 0) process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
