/**
 * What makes a model a text generator: config.yaml's `generation:` section (limits) and the Hugging Face
 * files beside it: config.json (architecture, positions), generation_config.json (end-of-sequence ids,
 * sampling defaults), tokenizer.json and tokenizer_config.json.
 *
 * @example
 * ```yaml
 * generation:
 *   max_concurrent_sequences: 8   # per inference worker; more wait (up to max_waiting_sequences)
 *   max_context_tokens: 512       # prompt + output; default and upper bound: the model's max_position_embeddings
 *   max_tokens: 512               # the most one request may ask for
 *   default_max_tokens: 64        # what a request that names none gets
 * ```
 */
import * as path from 'node:path';
import { z } from 'zod';
import type { HfModelConfig } from './decoder-layout';
import { readJson } from './hf-files';
import { TextTokenizer } from './text-tokenizer';

export const generationConfigSchema = z.strictObject({
  max_concurrent_sequences: z.number().int().min(1).max(1024).default(8),
  max_waiting_sequences: z.number().int().min(0).default(256),
  max_context_tokens: z.number().int().min(2).optional(),
  max_tokens: z.number().int().min(1).default(512),
  default_max_tokens: z.number().int().min(1).default(64),
});

export type GenerationConfig = z.infer<typeof generationConfigSchema>;

/** Sampling defaults from generation_config.json: only the fields it sets (absent ones are off). */
export interface SamplingDefaults {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repetitionPenalty: number;
}

interface HfGenerationConfig {
  eos_token_id?: number | number[];
  bos_token_id?: number;
  do_sample?: boolean;
  temperature?: number;
  top_k?: number;
  top_p?: number;
  min_p?: number;
  repetition_penalty?: number;
}

export class GenerationModel {
  private constructor(
    readonly config: GenerationConfig,
    readonly hf: HfModelConfig,
    readonly tokenizer: TextTokenizer,
    readonly eosTokenIds: number[],
    readonly defaults: SamplingDefaults,
  ) {}

  static async load(dir: string, config: GenerationConfig): Promise<GenerationModel> {
    const hf = (await readJson(path.join(dir, 'config.json'))) as HfModelConfig & { eos_token_id?: number | number[] };
    const gen = ((await readJson(path.join(dir, 'generation_config.json'), true)) ?? {}) as HfGenerationConfig;
    const tokenizer = await TextTokenizer.load(dir);
    const eos = gen.eos_token_id ?? hf.eos_token_id ?? (tokenizer.eosToken !== undefined ? tokenizer.tokenId(tokenizer.eosToken) : undefined);
    const eosTokenIds = eos === undefined ? [] : Array.isArray(eos) ? eos : [eos];
    const defaults: SamplingDefaults = {
      temperature: gen.do_sample === false ? 0 : (gen.temperature ?? 1),
      topK: gen.top_k ?? 0,
      topP: gen.top_p ?? 1,
      minP: gen.min_p ?? 0,
      repetitionPenalty: gen.repetition_penalty ?? 1,
    };
    const positions = hf.max_position_embeddings ?? hf.n_positions;
    if (config.max_context_tokens !== undefined && positions !== undefined && config.max_context_tokens > positions) {
      throw new Error(`generation.max_context_tokens ${config.max_context_tokens} is more than the model's ${positions} positions (config.json)`);
    }
    return new GenerationModel(config, hf, tokenizer, eosTokenIds, defaults);
  }

  /** The longest sequence (prompt + output) a request may reach. */
  contextTokens(maxPositions: number): number {
    return Math.min(this.config.max_context_tokens ?? maxPositions, maxPositions);
  }
}
