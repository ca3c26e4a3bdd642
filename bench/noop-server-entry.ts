/**
 * Child-process entry: the gRPC ceiling. A bare grpc-js server with our ModelService definition (the same
 * proto-loader options as tensorgate, so the same (de)serialisation work) whose Predict answers at once
 * with a precomputed response captured from the real server for the same request, so request and
 * response bytes match. Whatever tensorgate does beyond this is its own cost.
 *
 * argv[2]: a JSON file { [model]: PredictResponse } written by bench/run.ts (Buffers as Buffer.toJSON).
 */
import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import { runEntry, serveBare } from './bare-server';
import { reviveBuffers } from './workload';

async function main(): Promise<void> {
  const file = process.argv[2];
  if (!file) throw new Error('usage: noop-server-entry <responses.json>');
  const responses = JSON.parse(fs.readFileSync(file, 'utf8'), reviveBuffers) as Record<string, object>;
  await serveBare('no-op bench server', (ipc) => (call, callback) => {
    const response = responses[call.request.model];
    if (!response) {
      callback({ code: grpc.status.NOT_FOUND, details: `no-op bench server has no response for '${call.request.model}'` });
      return;
    }
    ipc.counters.requests++;
    ipc.counters.rows++;
    callback(null, response);
  });
}

runEntry('noop-server-entry', main);
