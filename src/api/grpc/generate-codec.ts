/**
 * tensorgate.v1 GenerateRequest / GenerateResponse <-> the generation pipeline's request and sink.
 * The server's decoder gives int64 fields as exact decimal strings (see protos.ts) and leaves proto3
 * `optional` fields undefined when the client did not set them, which is how "the model's default" is told
 * apart from an explicit 0.
 */
import type { Span } from '@opentelemetry/api';
import type * as grpc from '@grpc/grpc-js';
import type { CancelSignal } from '../../core/cancellation';
import { invalidArgument } from '../../core/errors';
import type { GenerationLimits } from '../../security/principal';
import type { GenerateRequest } from '../../generation/generate-request';
import type { GenerationChunk, GenerationSink, GenerationStart } from '../../serving/generation-pipeline';
import type { RequestRecord } from '../request-record';

export interface GenerateRequestMessage {
  model: string;
  version: string;
  prompt: string;
  prompt_token_ids: (string | number)[];
  messages: { role: string; content: string }[];
  max_tokens: number;
  temperature?: number;
  top_k?: number;
  top_p?: number;
  min_p: number;
  repetition_penalty: number;
  repeat_last_n: number;
  presence_penalty: number;
  frequency_penalty: number;
  stop: string[];
  stop_token_ids: (string | number)[];
  seed?: string | number;
  ignore_eos: boolean;
  options: { request_id: string; timeout_us: number | string } | null;
}

/** An int64 list element as a number; ids beyond 2^53 are refused (no vocabulary is that large). */
function int64List(name: string, values: readonly (string | number)[]): number[] {
  return values.map((v, i) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n)) throw invalidArgument(`${name}[${i}] is ${String(v).slice(0, 24)}, not a token id`);
    return n;
  });
}

export function generateRequestFromProto(m: GenerateRequestMessage, call: { requestId: string; deadline: number | undefined; signal: CancelSignal; callerLimits?: GenerationLimits; span?: Span }): GenerateRequest {
  const timeoutUs = Number(m.options?.timeout_us ?? 0);
  const timeoutDeadline = timeoutUs > 0 ? Date.now() + timeoutUs / 1000 : undefined;
  const deadline = [call.deadline, timeoutDeadline].filter((d): d is number => d !== undefined).reduce<number | undefined>((a, b) => (a === undefined ? b : Math.min(a, b)), undefined);
  return {
    model: m.model,
    version: m.version,
    ...(m.prompt ? { prompt: m.prompt } : {}),
    ...(m.prompt_token_ids.length ? { promptTokenIds: int64List('prompt_token_ids', m.prompt_token_ids) } : {}),
    ...(m.messages.length ? { messages: m.messages.map((x) => ({ role: x.role, content: x.content })) } : {}),
    maxTokens: m.max_tokens,
    ...(m.temperature !== undefined && m.temperature !== null ? { temperature: m.temperature } : {}),
    ...(m.top_k !== undefined && m.top_k !== null ? { topK: m.top_k } : {}),
    ...(m.top_p !== undefined && m.top_p !== null ? { topP: m.top_p } : {}),
    minP: m.min_p,
    repetitionPenalty: m.repetition_penalty,
    repeatLastN: m.repeat_last_n,
    presencePenalty: m.presence_penalty,
    frequencyPenalty: m.frequency_penalty,
    stop: m.stop,
    stopTokenIds: int64List('stop_token_ids', m.stop_token_ids),
    ...(m.seed !== undefined && m.seed !== null ? { seed: BigInt(m.seed) } : {}),
    ignoreEos: m.ignore_eos,
    ...(deadline !== undefined ? { deadline } : {}),
    signal: call.signal,
    requestId: call.requestId,
    ...(call.callerLimits ? { callerLimits: call.callerLimits } : {}),
    span: call.span,
  };
}

const FINISH_REASONS = { length: 'LENGTH', eos: 'EOS', stop: 'STOP', cancelled: 'CANCELLED' } as const;

/** A sink writing one GenerateResponse per chunk; the first also names the version, the seed and the request id. */
export function generateResponses(call: grpc.ServerWritableStream<unknown, unknown>, requestId: string, record: RequestRecord): GenerationSink {
  let first: { seed: string; version: string; request_id: string } | undefined;
  return {
    start(info: GenerationStart) {
      record.version = info.version;
      first = { seed: info.seed.toString(), version: info.version, request_id: requestId };
    },
    chunk(c: GenerationChunk) {
      const message: Record<string, unknown> = { text: c.text, token_ids: c.tokenIds, ...first };
      first = undefined;
      if (c.finish) {
        const u = c.finish.usage;
        message.finish_reason = FINISH_REASONS[c.finish.reason];
        message.usage = { prompt_tokens: u.promptTokens, completion_tokens: u.completionTokens, time_to_first_token_s: u.timeToFirstTokenS, total_time_s: u.totalS };
      }
      call.write(message);
    },
  };
}
