/**
 * The one internal generation request every front door (gRPC Generate, the OpenAI-compatible HTTP API)
 * translates to, and its validation: every parameter is honoured or refused with INVALID_ARGUMENT naming
 * it and its range; nothing is silently ignored or clamped. Names in messages are the wire names
 * (snake_case, as in the proto and the OpenAI API).
 */
import type { Span } from '@opentelemetry/api';
import type { CancelSignal } from '../core/cancellation';
import { invalidArgument } from '../core/errors';
import type { SamplingDefaults } from './generation-model';
import type { SamplingParams } from './sampling';
import type { ChatMessage } from './text-tokenizer';
import type { GenerationLimits } from '../security/principal';

export interface GenerateRequest {
  model: string;
  version: string;
  /** Exactly one of prompt, promptTokenIds, messages. */
  prompt?: string;
  promptTokenIds?: number[];
  messages?: ChatMessage[];
  /** Undefined or 0: the model's default_max_tokens. */
  maxTokens?: number;
  /** Undefined: the model's default (generation_config.json). */
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repetitionPenalty?: number;
  repeatLastN?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  stop?: string[];
  stopTokenIds?: number[];
  /** Undefined: the server picks one (and reports it). */
  seed?: bigint;
  ignoreEos?: boolean;
  deadline?: number;
  signal?: CancelSignal;
  requestId: string;
  /** The authenticated caller's limits from the access policy (--auth-config generation_limits), if any. */
  callerLimits?: GenerationLimits;
  /** The stream's span (the front door's SERVER span, or an async job's): InferenceRequest.span. */
  span?: Span;
}

export const MAX_STOP_STRINGS = 8;
export const MAX_STOP_BYTES = 128;
export const MAX_STOP_TOKEN_IDS = 64;

/** `value` must be finite and in [min, max] (or (min, max] with `openMin`). */
function inRange(name: string, value: number, min: number, max: number, openMin = false): number {
  const ok = Number.isFinite(value) && (openMin ? value > min : value >= min) && value <= max;
  if (!ok) throw invalidArgument(`${name} must be in ${openMin ? '(' : '['}${min}, ${max}], got ${value}`);
  return value;
}

/** The sampling parameters a request asks for, defaults filled in from the model. */
export function samplingParams(r: GenerateRequest, defaults: SamplingDefaults): SamplingParams {
  const topK = r.topK ?? defaults.topK;
  if (!Number.isInteger(topK) || topK < 0) throw invalidArgument(`top_k must be an integer >= 0 (0 = off), got ${topK}`);
  const repetition = r.repetitionPenalty === undefined || r.repetitionPenalty === 0 ? defaults.repetitionPenalty : r.repetitionPenalty;
  const repeatLastN = r.repeatLastN ?? 0;
  if (!Number.isInteger(repeatLastN) || repeatLastN < 0) throw invalidArgument(`repeat_last_n must be an integer >= 0 (0 = the whole sequence), got ${repeatLastN}`);
  return {
    temperature: inRange('temperature', r.temperature ?? defaults.temperature, 0, 100),
    topK,
    topP: inRange('top_p', r.topP ?? defaults.topP, 0, 1, true),
    minP: inRange('min_p', r.minP ?? defaults.minP, 0, 1),
    repetitionPenalty: inRange('repetition_penalty', repetition, 0, 10, true),
    repeatLastN,
    presencePenalty: inRange('presence_penalty', r.presencePenalty ?? 0, -2, 2),
    frequencyPenalty: inRange('frequency_penalty', r.frequencyPenalty ?? 0, -2, 2),
  };
}

export function checkStops(stops: readonly string[]): string[] {
  if (stops.length > MAX_STOP_STRINGS) throw invalidArgument(`stop has ${stops.length} strings; at most ${MAX_STOP_STRINGS} are allowed`);
  for (const [i, s] of stops.entries()) {
    const bytes = Buffer.byteLength(s, 'utf8');
    if (bytes === 0 || bytes > MAX_STOP_BYTES) throw invalidArgument(`stop[${i}] is ${bytes} bytes; each stop string must be 1..${MAX_STOP_BYTES} bytes`);
  }
  return [...stops];
}

/** Token ids must name tokens of the model's vocabulary. */
export function checkTokenIds(name: string, ids: readonly number[], vocabSize: number, maxCount = Infinity): number[] {
  if (ids.length > maxCount) throw invalidArgument(`${name} has ${ids.length} ids; at most ${maxCount} are allowed`);
  for (const [i, id] of ids.entries()) {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw invalidArgument(`${name}[${i}] is ${id}; token ids are integers in [0, ${vocabSize - 1}] for this model`);
  }
  return [...ids];
}

/**
 * The tokens to generate at most: the request's max_tokens (or the model's default, shortened to what the
 * context leaves), refused when above the model's max_tokens or what the context leaves after the prompt.
 */
export function maxNewTokens(requested: number | undefined, promptTokens: number, limits: { maxTokens: number; defaultMaxTokens: number; contextTokens: number }): number {
  const room = limits.contextTokens - promptTokens;
  if (room < 1) {
    throw invalidArgument(`the prompt is ${promptTokens} tokens; this model's context holds ${limits.contextTokens} (prompt and output), so nothing can be generated: shorten the prompt`);
  }
  if (requested === undefined || requested === 0) return Math.min(limits.defaultMaxTokens, room);
  if (!Number.isInteger(requested) || requested < 0) throw invalidArgument(`max_tokens must be a positive integer, got ${requested}`);
  if (requested > limits.maxTokens) throw invalidArgument(`max_tokens ${requested} is above this model's limit of ${limits.maxTokens} (generation.max_tokens)`);
  if (requested > room) {
    throw invalidArgument(`max_tokens ${requested} does not fit: the prompt is ${promptTokens} tokens and the context holds ${limits.contextTokens}, leaving ${room}`);
  }
  return requested;
}
