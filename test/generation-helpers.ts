/** Generate over gRPC in tests: the gqa-decoder fixture as a served model, and a call that collects the stream. */
import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PACKAGE_ROOT, tempDir, type TestServer } from './common';

export const FIXTURE = path.join(PACKAGE_ROOT, 'test/fixtures/models/gqa-decoder');
export interface GenerateMessage {
  text: string;
  token_ids: (number | string)[];
  finish_reason: string;
  usage: { prompt_tokens: number; completion_tokens: number; time_to_first_token_s: number; total_time_s: number } | null;
  seed: number | string;
  request_id: string;
  version: string;
}

export const GQA_CONFIG = 'generation:\n  max_concurrent_sequences: 4\n  max_tokens: 128\n';

/** Adds the fixture to a repository as model `name` with `config` as its config.yaml. */
export function addGenerationModel(root: string, name = 'gqa', config = GQA_CONFIG): void {
  fs.cpSync(FIXTURE, path.join(root, name), { recursive: true });
  fs.writeFileSync(path.join(root, name, 'config.yaml'), config);
}

/** A temp repository with the fixture as `gqa`. */
export function generationRepository(config = GQA_CONFIG): { dir: string; cleanup: () => void } {
  const repo = tempDir('generate');
  addGenerationModel(repo.dir, 'gqa', config);
  return repo;
}

export function generate(ts: TestServer, request: object, options: grpc.CallOptions = {}, metadata = new grpc.Metadata()): Promise<GenerateMessage[]> {
  return new Promise((resolve, reject) => {
    const messages: GenerateMessage[] = [];
    const call = ts.client.Generate(request, metadata, options);
    call.on('data', (m: GenerateMessage) => messages.push(m));
    call.on('error', reject);
    call.on('end', () => resolve(messages));
  });
}

export const tokensOf = (messages: GenerateMessage[]) => messages.flatMap((m) => m.token_ids.map(Number));
export const textOf = (messages: GenerateMessage[]) => messages.map((m) => m.text).join('');

