/**
 * The OpenAI-compatible API's answer bodies, shared by its synchronous routes (src/api/openai/openai-routes.ts)
 * and its async jobs (src/api/openai/openai-jobs.ts), so a job's result is the body the call would have sent:
 * a whole completion or chat completion, and the API's error shape.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { ServingError } from '../../core/errors';
import type { FinishReason, Usage } from '../../serving/generation-pipeline';
import { toHttpError } from '../http/status';
import { OpenAiRequestError } from './openai-requests';

export type CompletionKind = 'completion' | 'chat';

const ERROR_TYPES: Partial<Record<number, string>> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  429: 'rate_limit_error',
  499: 'cancelled',
  500: 'server_error',
  503: 'service_unavailable_error',
  504: 'timeout_error',
};

/** The error `type` the API uses for an HTTP status. */
export const errorTypeOf = (status: number): string | undefined => ERROR_TYPES[status];

/** The API's error body for a failure; `param` when a request field is to blame. */
export function openAiError(err: unknown): { status: number; body: { error: { message: string; type: string; param: string | null; code: string } }; headers: Record<string, string> } {
  const e = ServingError.from(err);
  const { status, headers } = toHttpError(e);
  const param = e instanceof OpenAiRequestError ? (e.param ?? null) : paramOf(e.message);
  const code = e.code === 'NOT_FOUND' && /^model /.test(e.message) ? 'model_not_found' : e.code.toLowerCase();
  return { status, body: { error: { message: e.message, type: ERROR_TYPES[status] ?? 'server_error', param, code } }, headers };
}

/** The pipeline's messages start with the wire name of the parameter at fault ("top_p must be ..."). */
function paramOf(message: string): string | null {
  const m = /^(max_tokens|temperature|top_p|top_k|min_p|repetition_penalty|repeat_last_n|presence_penalty|frequency_penalty|stop|stop_token_ids|messages|prompt_token_ids)\b/.exec(message);
  return m ? m[1]! : null;
}

export const FINISH: Record<FinishReason, string> = { eos: 'stop', stop: 'stop', length: 'length', cancelled: 'abort' };

export const usageOf = (u: Usage) => ({ prompt_tokens: u.promptTokens, completion_tokens: u.completionTokens, total_tokens: u.promptTokens + u.completionTokens });

/** A whole (not streamed) completion or chat completion, as the API answers it. */
export function completionBody(kind: CompletionKind, id: string, model: string, text: string, finish: { reason: FinishReason; usage: Usage }, seed: string) {
  const reason = FINISH[finish.reason];
  const choice = kind === 'chat' ? { index: 0, message: { role: 'assistant', content: text }, logprobs: null, finish_reason: reason } : { index: 0, text, logprobs: null, finish_reason: reason };
  // The seed as a JSON number, like the request's (server-picked seeds stay below 2^53, so it is exact).
  return { id, object: kind === 'chat' ? 'chat.completion' : 'text_completion', created: Math.floor(Date.now() / 1000), model, choices: [choice], usage: usageOf(finish.usage), seed: Number(seed) };
}

/** The caller's X-Request-Id when it sent a usable one. */
export function requestIdHeader(headers: IncomingHttpHeaders): string | undefined {
  const v = headers['x-request-id'];
  const s = Array.isArray(v) ? v[0] : v;
  return s && s.length <= 128 ? s : undefined;
}
