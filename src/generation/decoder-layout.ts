/**
 * How a decoder ONNX model in the Hugging Face / Optimum layout wants to be fed, read from what its
 * session reports (names, types, shapes) and the model folder's config.json:
 *
 *   inputs   input_ids [B,S] int64, attention_mask [B,P+S] int64, position_ids [B,S] int64 (optional),
 *            past_key_values.{i}.key|value [B,kvH,P,D] fp32|fp16, use_cache_branch [1] bool (optional,
 *            merged decoders), num_logits_to_keep int64 scalar (optional)
 *   outputs  logits [B,S,V], present.{i}.key|value [B,kvH,P+S,D]
 *
 * A model that does not fit is refused at load with everything it lacks named (the version is UNAVAILABLE).
 * Plain data: it crosses to the workers that run the model with each first step.
 */
import type { TensorSpec } from '../core/tensor';

export interface DecoderLayout {
  layers: number;
  kvHeads: number;
  headDim: number;
  /** The KV cache's element type, as the model declares it (the cache is kept in it, never converted). */
  kvDtype: 'FP32' | 'FP16';
  vocabSize: number;
  hasPositionIds: boolean;
  hasUseCacheBranch: boolean;
  hasNumLogitsToKeep: boolean;
  /** The longest sequence (prompt and output) the model's positions cover. */
  maxPositions: number;
}

/** The config.json fields the layout needs (standard Hugging Face names). */
export interface HfModelConfig {
  num_hidden_layers?: number;
  num_attention_heads?: number;
  num_key_value_heads?: number;
  head_dim?: number;
  hidden_size?: number;
  vocab_size?: number;
  max_position_embeddings?: number;
  n_positions?: number;
  n_layer?: number;
  n_head?: number;
  n_embd?: number;
}

export const pastName = (layer: number, kind: 'key' | 'value') => `past_key_values.${layer}.${kind}`;
export const presentName = (layer: number, kind: 'key' | 'value') => `present.${layer}.${kind}`;

/** The layout, or an Error naming every way the model does not fit. */
export function readDecoderLayout(inputs: readonly TensorSpec[], outputs: readonly TensorSpec[], config: HfModelConfig): DecoderLayout {
  const problems: string[] = [];
  const input = new Map(inputs.map((t) => [t.name, t]));
  const output = new Map(outputs.map((t) => [t.name, t]));
  const need = (map: Map<string, TensorSpec>, kind: string, name: string, dtypes: string[], rank: number) => {
    const t = map.get(name);
    if (!t) problems.push(`${kind} '${name}' is missing`);
    else if (!dtypes.includes(t.dtype)) problems.push(`${kind} '${name}' is ${t.dtype}, expected ${dtypes.join(' or ')}`);
    else if (t.shape.length !== rank) problems.push(`${kind} '${name}' has rank ${t.shape.length}, expected ${rank}`);
    return t;
  };
  need(input, 'input', 'input_ids', ['INT64'], 2);
  need(input, 'input', 'attention_mask', ['INT64'], 2);
  const positions = input.get('position_ids');
  if (positions) need(input, 'input', 'position_ids', ['INT64'], 2);
  const useCacheBranch = input.get('use_cache_branch');
  if (useCacheBranch && useCacheBranch.dtype !== 'BOOL') problems.push(`input 'use_cache_branch' is ${useCacheBranch.dtype}, expected BOOL`);
  const logits = need(output, 'output', 'logits', ['FP32'], 3);

  let layers = 0;
  while (input.has(pastName(layers, 'key'))) layers++;
  if (layers === 0) problems.push(`no KV cache inputs ('${pastName(0, 'key')}', ...): export the model with past key values (a "decoder with past" or merged decoder)`);
  const configuredLayers = config.num_hidden_layers ?? config.n_layer;
  if (configuredLayers !== undefined && layers > 0 && configuredLayers !== layers) {
    problems.push(`config.json has ${configuredLayers} layers but the model has KV inputs for ${layers}`);
  }
  const first = input.get(pastName(0, 'key'));
  const kvDtype = first?.dtype;
  if (first && kvDtype !== 'FP32' && kvDtype !== 'FP16') problems.push(`input '${first.name}' is ${kvDtype}, expected FP32 or FP16`);
  const heads = config.num_attention_heads ?? config.n_head;
  const hidden = config.hidden_size ?? config.n_embd;
  const kvHeads = dim(first, 1) ?? config.num_key_value_heads ?? heads;
  const headDim = dim(first, 3) ?? config.head_dim ?? (hidden !== undefined && heads ? hidden / heads : undefined);
  if (!kvHeads) problems.push('the number of KV heads is neither in the model nor in config.json (num_key_value_heads / num_attention_heads)');
  if (!headDim || !Number.isInteger(headDim)) problems.push('the head size is neither in the model nor in config.json (head_dim, or hidden_size / num_attention_heads)');
  for (let i = 0; i < layers; i++) {
    for (const kind of ['key', 'value'] as const) {
      for (const [map, name, what] of [[input, pastName(i, kind), 'input'], [output, presentName(i, kind), 'output']] as const) {
        const t = need(map, what, name, [kvDtype ?? 'FP32'], 4);
        if (t && ((dim(t, 1) !== undefined && dim(t, 1) !== kvHeads) || (dim(t, 3) !== undefined && dim(t, 3) !== headDim))) {
          problems.push(`${what} '${name}' has shape [${t.shape.join(', ')}], expected [batch, ${kvHeads}, length, ${headDim}]`);
        }
      }
    }
  }
  const vocabSize = dim(logits, 2) ?? config.vocab_size;
  if (!vocabSize) problems.push('the vocabulary size is neither in the logits shape nor in config.json (vocab_size)');
  const maxPositions = config.max_position_embeddings ?? config.n_positions;
  if (!maxPositions) problems.push('config.json has no max_position_embeddings (or n_positions): the longest sequence the model covers is unknown');
  if (problems.length > 0) throw new Error(`not a decoder in the Hugging Face layout: ${problems.join('; ')}`);
  return {
    layers,
    kvHeads: kvHeads!,
    headDim: headDim!,
    kvDtype: kvDtype as 'FP32' | 'FP16',
    vocabSize: vocabSize!,
    hasPositionIds: positions !== undefined,
    hasUseCacheBranch: useCacheBranch !== undefined,
    hasNumLogitsToKeep: input.has('num_logits_to_keep'),
    maxPositions: maxPositions!,
  };
}

/** A fixed dimension, or undefined for a symbolic one. */
function dim(t: TensorSpec | undefined, i: number): number | undefined {
  const d = t?.shape[i];
  return d !== undefined && d >= 0 ? d : undefined;
}
