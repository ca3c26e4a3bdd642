/**
 * OpenAI-compatible request bodies (POST /v1/completions, /v1/chat/completions) -> the one internal
 * GenerateRequest. Parameter names are the OpenAI API's, plus the extensions vLLM and TGI accept (top_k,
 * min_p, repetition_penalty, ignore_eos, stop_token_ids). Every field is honoured or refused naming it:
 * unknown fields, n > 1, logprobs, tools and non-text response formats are refused, not ignored; `user`
 * is accepted and only logged nowhere (documented).
 */
import type { Span } from '@opentelemetry/api';
import { z } from 'zod';
import type { CancelSignal } from '../../core/cancellation';
import { Code, invalidArgument, ServingError } from '../../core/errors';
import type { GenerationLimits } from '../../security/principal';
import type { GenerateRequest } from '../../generation/generate-request';
import type { ChatMessage } from '../../generation/text-tokenizer';

const sampling = {
  model: z.string().min(1),
  max_tokens: z.number().int().min(1).nullish(),
  temperature: z.number().nullish(),
  top_p: z.number().nullish(),
  top_k: z.number().int().nullish(),
  min_p: z.number().nullish(),
  repetition_penalty: z.number().nullish(),
  presence_penalty: z.number().nullish(),
  frequency_penalty: z.number().nullish(),
  stop: z.union([z.string(), z.array(z.string())]).nullish(),
  stop_token_ids: z.array(z.number().int()).nullish(),
  seed: z.number().int().min(0).nullish(),
  ignore_eos: z.boolean().nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.strictObject({ include_usage: z.boolean().nullish() }).nullish(),
  n: z.literal(1, { message: 'only n = 1 is supported (one choice per request)' }).nullish(),
  logprobs: z.union([z.literal(false), z.null()], { message: 'logprobs are not supported' }).optional(),
  user: z.string().optional(),
};

export const completionRequestSchema = z.strictObject({
  ...sampling,
  /** One prompt: text, or token ids; a list of one text is accepted (the API allows lists). */
  prompt: z.union([z.string(), z.array(z.string()).length(1, { message: 'only one prompt per request is supported' }), z.array(z.number().int())]),
  echo: z.literal(false, { message: 'echo is not supported' }).nullish(),
  best_of: z.literal(1, { message: 'only best_of = 1 is supported' }).nullish(),
  suffix: z.null({ message: 'suffix is not supported' }).optional(),
  logit_bias: z.record(z.string(), z.number()).refine((b) => Object.keys(b).length === 0, { message: 'logit_bias is not supported' }).nullish(),
});

const contentPart = z.strictObject({ type: z.literal('text', { message: "only content parts of type 'text' are supported" }), text: z.string() });

export const chatRequestSchema = z.strictObject({
  ...sampling,
  messages: z
    .array(
      z.strictObject({
        role: z.enum(['system', 'developer', 'user', 'assistant']),
        content: z.union([z.string(), z.array(contentPart)]),
        name: z.string().optional(),
      }),
    )
    .min(1),
  max_completion_tokens: z.number().int().min(1).nullish(),
  top_logprobs: z.null({ message: 'logprobs are not supported' }).optional(),
  response_format: z.strictObject({ type: z.literal('text', { message: "only response_format type 'text' is supported" }) }).nullish(),
  tools: z.array(z.unknown()).max(0, { message: 'tools are not supported' }).nullish(),
  tool_choice: z.literal('none', { message: 'tools are not supported' }).nullish(),
  logit_bias: z.record(z.string(), z.number()).refine((b) => Object.keys(b).length === 0, { message: 'logit_bias is not supported' }).nullish(),
});

export type CompletionRequest = z.infer<typeof completionRequestSchema>;
export type ChatRequest = z.infer<typeof chatRequestSchema>;

/** A body that does not fit the schema -> INVALID_ARGUMENT naming the first offending field. */
export class OpenAiRequestError extends ServingError {
  constructor(
    message: string,
    readonly param: string | undefined,
  ) {
    super(Code.INVALID_ARGUMENT, message);
  }
}

export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new OpenAiRequestError('the request body must be a JSON object', undefined);
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const param = issue.path.length > 0 ? issue.path.map(String).join('.') : undefined;
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.slice(0, 5).map((k) => k.slice(0, 40));
    throw new OpenAiRequestError(`unsupported parameter${keys.length > 1 ? 's' : ''} ${keys.join(', ')}: tensorgate refuses parameters it would otherwise ignore`, keys[0]);
  }
  throw new OpenAiRequestError(`${param ?? 'body'}: ${issue.message}`, param);
}

interface CallContext {
  requestId: string;
  signal: CancelSignal;
  callerLimits?: GenerationLimits;
  span?: Span;
}

const opt = <T>(v: T | null | undefined): T | undefined => (v === null ? undefined : v);

function common(r: CompletionRequest | ChatRequest, call: CallContext): GenerateRequest {
  const stop = r.stop === null || r.stop === undefined ? [] : typeof r.stop === 'string' ? [r.stop] : r.stop;
  const seed = opt(r.seed);
  return {
    model: r.model,
    version: '',
    maxTokens: opt(r.max_tokens),
    temperature: opt(r.temperature),
    topP: opt(r.top_p),
    topK: opt(r.top_k),
    minP: opt(r.min_p),
    repetitionPenalty: opt(r.repetition_penalty),
    presencePenalty: opt(r.presence_penalty),
    frequencyPenalty: opt(r.frequency_penalty),
    stop,
    stopTokenIds: opt(r.stop_token_ids) ?? [],
    ...(seed !== undefined ? { seed: BigInt(seed) } : {}),
    ignoreEos: opt(r.ignore_eos) ?? false,
    signal: call.signal,
    requestId: call.requestId,
    ...(call.callerLimits ? { callerLimits: call.callerLimits } : {}),
    span: call.span,
  };
}

export function completionToGenerate(r: CompletionRequest, call: CallContext): GenerateRequest {
  const request = common(r, call);
  const p = r.prompt;
  if (typeof p === 'string') return { ...request, prompt: p };
  if (p.length > 0 && typeof p[0] === 'string') return { ...request, prompt: p[0] as string };
  return { ...request, promptTokenIds: p as number[] };
}

export function chatToGenerate(r: ChatRequest, call: CallContext): GenerateRequest {
  if (r.max_tokens && r.max_completion_tokens && r.max_tokens !== r.max_completion_tokens) {
    throw invalidArgument('max_tokens and max_completion_tokens disagree; send one');
  }
  const messages: ChatMessage[] = r.messages.map((m) => ({
    // 'developer' is the newer name of 'system' in the OpenAI API; chat templates know 'system'.
    role: m.role === 'developer' ? 'system' : m.role,
    content: typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join(''),
  }));
  return { ...common(r, call), maxTokens: opt(r.max_completion_tokens) ?? opt(r.max_tokens), messages };
}
