/**
 * GenerationPipeline: what every front door that generates text calls (gRPC Generate, the OpenAI-compatible
 * HTTP API), so each gets the same behaviour:
 *
 *   resolve model+version -> prompt to tokens (text, chat messages through the chat template, or ids)
 *     -> validate every parameter -> circuit breaker (per version; only server faults count)
 *       -> sequence scheduler (admission, continuous batching on the worker that keeps the KV cache)
 *         -> each token: detokenise, hold back split characters and possible stop strings -> the sink
 *
 * The sink gets one chunk per generated token (its text may be empty while held back); the last chunk
 * carries the finish reason and usage. A cancelled call (client gone, deadline passed) leaves the batch at
 * the next step and the promise rejects CANCELLED.
 */
import { recording } from '../telemetry/tracing';
import type { CancelSignal } from '../core/cancellation';
import { cancelled, invalidArgument, resourceExhausted } from '../core/errors';
import { checkStops, checkTokenIds, maxNewTokens, MAX_STOP_TOKEN_IDS, samplingParams, type GenerateRequest } from '../generation/generate-request';
import type { SequenceScheduler } from '../generation/sequence-scheduler';
import { randomSeed } from '../generation/seeded-random';
import { TextStream } from '../generation/text-stream';
import type { ModelEntry, ModelRepository, ModelVersionEntry } from '../repository/model-repository';
import type { BreakerRegistry } from '../resilience/circuit-breaker';
import { ATTR_GEN_COMPLETION_TOKENS, ATTR_GEN_FINISH_REASON, ATTR_GEN_PROMPT_TOKENS, ATTR_GEN_SEED, ATTR_MODEL, ATTR_MODEL_VERSION, EVENT_GEN_FIRST_TOKEN } from '../telemetry/semconv';

export type FinishReason = 'length' | 'eos' | 'stop' | 'cancelled';

export interface GenerationStart {
  model: string;
  version: string;
  seed: bigint;
  promptTokens: number;
}

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  timeToFirstTokenS: number;
  totalS: number;
}

export interface GenerationChunk {
  text: string;
  tokenIds: number[];
  /** On the last chunk only. */
  finish?: { reason: FinishReason; usage: Usage };
}

export interface GenerationSink {
  /** Before the first chunk: what is about to be generated. */
  start(info: GenerationStart): void;
  chunk(chunk: GenerationChunk): void;
}

/** What the metrics want to hear about generation. */
export interface GenerationObserver {
  firstToken(model: string, seconds: number): void;
  interToken(model: string, seconds: number): void;
  tokens(model: string, direction: 'in' | 'out', count: number): void;
  finished(model: string, reason: FinishReason): void;
}

export interface GenerationParts {
  repository: ModelRepository;
  sequences: SequenceScheduler;
  breakers: BreakerRegistry;
  limits: { maxTextBytes: number };
  observer?: GenerationObserver;
}

export class GenerationPipeline {
  constructor(private readonly parts: GenerationParts) {}

  async generate(request: GenerateRequest, sink: GenerationSink): Promise<Usage & { finishReason: FinishReason }> {
    const arrived = performance.now();
    const { entry, version } = this.resolve(request);
    // One span per stream (the front door's SERVER span): the model, token counts and finish reason as
    // attributes, the first token as an event; no span per token.
    const span = recording(request.span);
    span?.setAttributes({ [ATTR_MODEL]: entry.name, [ATTR_MODEL_VERSION]: version.version });
    const model = entry.generation!;
    const layout = version.decoder!;
    const prompt = this.promptTokens(request, entry, layout.vocabSize);
    const params = samplingParams(request, model.defaults);
    const stops = checkStops(request.stop ?? []);
    const stopTokenIds = checkTokenIds('stop_token_ids', request.stopTokenIds ?? [], layout.vocabSize, MAX_STOP_TOKEN_IDS);
    const contextTokens = model.contextTokens(layout.maxPositions);
    const callerMax = request.callerLimits?.maxTokens;
    if (callerMax !== undefined && (request.maxTokens ?? 0) > callerMax) {
      throw resourceExhausted(`max_tokens ${request.maxTokens} is more than the ${callerMax} this caller may ask for (the access policy's generation_limits)`);
    }
    const maxNew = Math.min(
      maxNewTokens(request.maxTokens, prompt.length, {
        maxTokens: model.config.max_tokens,
        defaultMaxTokens: model.config.default_max_tokens,
        contextTokens,
      }),
      callerMax ?? Infinity,
    );
    const seed = request.seed ?? randomSeed();
    span?.setAttributes({ [ATTR_GEN_PROMPT_TOKENS]: prompt.length, [ATTR_GEN_SEED]: seed.toString() });
    if (request.signal?.aborted) throw cancelled('the call was cancelled before generation started');

    const breaker = this.parts.breakers.get(version.key, entry.name, version.version, entry.config!.circuit_breaker);
    return breaker.fire(
      () =>
        new Promise((resolve, reject) => {
          const observer = this.parts.observer;
          const text = new TextStream((ids) => model.tokenizer.decode(ids), stops);
          let completion = 0;
          let firstAt = 0;
          let lastAt = 0;
          let done = false;
          const usage = (): Usage => ({
            promptTokens: prompt.length,
            completionTokens: completion,
            timeToFirstTokenS: firstAt ? (firstAt - arrived) / 1000 : 0,
            totalS: (performance.now() - arrived) / 1000,
          });
          const finish = (reason: FinishReason): Usage & { finishReason: FinishReason } => {
            done = true;
            stopListening?.();
            observer?.tokens(entry.name, 'out', completion);
            observer?.finished(entry.name, reason);
            span?.setAttributes({ [ATTR_GEN_COMPLETION_TOKENS]: completion, [ATTR_GEN_FINISH_REASON]: reason });
            return { ...usage(), finishReason: reason };
          };
          // Admission first: a refusal (RESOURCE_EXHAUSTED) rejects before the sink has started anything, so a
          // front door can still answer it with a status; tokens only ever arrive later, from a worker.
          const handle = this.parts.sequences.start(
            version.key,
            layout,
            { maxSequencesPerWorker: model.config.max_concurrent_sequences, maxWaiting: model.config.max_waiting_sequences },
            { prompt, params, seed, maxNewTokens: maxNew, maxLength: contextTokens, eosTokenIds: model.eosTokenIds, stopTokenIds, ignoreEos: request.ignoreEos ?? false },
            {
              token: (t) => {
                if (done) return;
                const now = performance.now();
                if (completion === 0) {
                  observer?.firstToken(entry.name, (now - arrived) / 1000);
                  span?.addEvent(EVENT_GEN_FIRST_TOKEN);
                }
                else observer?.interToken(entry.name, (now - lastAt) / 1000);
                firstAt ||= now;
                lastAt = now;
                completion++;
                const step = text.push(t.token);
                if (step.stopped) {
                  handle.end();
                  const result = finish('stop');
                  sink.chunk({ text: step.text, tokenIds: [t.token], finish: { reason: 'stop', usage: result } });
                  resolve(result);
                } else if (t.finish) {
                  const result = finish(t.finish);
                  sink.chunk({ text: step.text + text.finish(), tokenIds: [t.token], finish: { reason: t.finish, usage: result } });
                  resolve(result);
                } else {
                  sink.chunk({ text: step.text, tokenIds: [t.token] });
                }
              },
              fail: (error) => {
                if (done) return;
                finish('cancelled');
                reject(error);
              },
            },
            request.deadline,
          );
          sink.start({ model: entry.name, version: version.version, seed, promptTokens: prompt.length });
          observer?.tokens(entry.name, 'in', prompt.length);
          const stopListening = listen(request.signal, () => {
            if (done) return;
            handle.end();
            finish('cancelled');
            reject(cancelled('the call was cancelled or its deadline passed; generation stopped'));
          });
        }),
    );
  }

  private resolve(request: GenerateRequest): { entry: ModelEntry; version: ModelVersionEntry } {
    const { entry, version } = this.parts.repository.resolve(request.model, request.version || undefined);
    if (!entry.generation || !version.decoder) {
      throw invalidArgument(`model '${entry.name}' is not a generation model (its config.yaml has no generation section); call Predict for it`);
    }
    return { entry, version };
  }

  /** The prompt as token ids, from exactly one of prompt, prompt_token_ids and messages. */
  private promptTokens(request: GenerateRequest, entry: ModelEntry, vocabSize: number): number[] {
    const given = [request.prompt ? 'prompt' : '', request.promptTokenIds?.length ? 'prompt_token_ids' : '', request.messages?.length ? 'messages' : ''].filter(Boolean);
    if (given.length !== 1) {
      throw invalidArgument(given.length === 0 ? 'nothing to continue: give prompt, prompt_token_ids or messages' : `give one of prompt, prompt_token_ids and messages, not ${given.join(' and ')}`);
    }
    const tokenizer = entry.generation!.tokenizer;
    const callerMaxBytes = request.callerLimits?.maxPromptBytes;
    const callerLimit = (bytes: number) => {
      if (callerMaxBytes !== undefined && bytes > callerMaxBytes) {
        throw resourceExhausted(`the prompt is ${bytes} bytes, more than the ${callerMaxBytes} this caller may send (the access policy's generation_limits)`);
      }
    };
    if (request.promptTokenIds?.length) {
      const ids = checkTokenIds('prompt_token_ids', request.promptTokenIds, vocabSize);
      // Token ids are held to the same byte limit as the text they stand for.
      if (callerMaxBytes !== undefined) callerLimit(Buffer.byteLength(tokenizer.decode(ids), 'utf8'));
      return ids;
    }
    let text: string;
    let addSpecial = true;
    if (request.messages?.length) {
      if (!tokenizer.hasChatTemplate) throw invalidArgument(`model '${entry.name}' has no chat template (tokenizer_config.json chat_template); send a prompt instead of messages`);
      for (const [i, m] of request.messages.entries()) {
        if (!['system', 'user', 'assistant'].includes(m.role)) throw invalidArgument(`messages[${i}].role must be system, user or assistant, got '${m.role.slice(0, 32)}'`);
      }
      text = tokenizer.renderChat(request.messages);
      addSpecial = false; // templates write their own special tokens, as transformers' apply_chat_template assumes
    } else {
      text = request.prompt!;
    }
    const bytes = Buffer.byteLength(text, 'utf8');
    if (bytes > this.parts.limits.maxTextBytes) {
      throw resourceExhausted(`the prompt is ${bytes} bytes, more than the limit of ${this.parts.limits.maxTextBytes} (--max-text-bytes / TENSORGATE_MAX_TEXT_BYTES)`);
    }
    callerLimit(bytes);
    const ids = tokenizer.encode(text, addSpecial);
    if (ids.length === 0) throw invalidArgument('the prompt encodes to no tokens');
    return ids;
  }
}

/** Calls `onAbort` once when `signal` aborts; returns the unsubscribe. */
function listen(signal: CancelSignal | undefined, onAbort: () => void): (() => void) | undefined {
  if (!signal) return undefined;
  if (signal.aborted) {
    queueMicrotask(onAbort);
    return undefined;
  }
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}
